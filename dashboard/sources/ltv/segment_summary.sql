select * from segment_summary
