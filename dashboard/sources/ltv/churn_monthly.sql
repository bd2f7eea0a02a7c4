select * from churn_monthly
