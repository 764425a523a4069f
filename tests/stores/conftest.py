"""The store tests run on both real backends: the `backend` and `store` fixtures are in ``tests/conftest.py``.

Without a PostgreSQL server the PostgreSQL tests fail: they are never skipped.
"""
