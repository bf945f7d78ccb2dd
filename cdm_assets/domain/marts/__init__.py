"""Master models: customers, transactions, events, customer metrics, and their data tests."""
