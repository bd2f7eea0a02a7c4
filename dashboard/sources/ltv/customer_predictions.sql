select customer_id, frequency, p_alive, expected_purchases, predicted_clv, as_of_date from customer_predictions
