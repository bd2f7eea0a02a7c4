select * from customer_revenue_deciles
