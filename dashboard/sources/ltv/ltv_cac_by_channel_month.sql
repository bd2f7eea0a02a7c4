select * from ltv_cac_by_channel_month
