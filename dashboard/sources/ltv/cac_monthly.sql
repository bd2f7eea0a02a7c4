select * from cac_monthly
