"""Alerts and their acknowledgements: one facade (`Alerts`), two backends (embedded rules in
SQLite, Alertmanager API v2), and a durable outbox for Alertmanager."""
