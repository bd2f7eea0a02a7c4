select * from ltv_summary
