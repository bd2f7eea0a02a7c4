select * from clv_backtest
