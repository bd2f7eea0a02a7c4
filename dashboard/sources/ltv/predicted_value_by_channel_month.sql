select * from predicted_value_by_channel_month
