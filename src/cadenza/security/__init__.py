"""Security: signing identities and sealed envelopes, the run's signing checks, the tamper-evident audit log."""
