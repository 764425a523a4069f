"""Observability: spans, metrics, log lines and the audit sink, each a subscriber to the run's events."""
