"""Daily metric series per product, listing snapshots, reviews and KPIs."""
