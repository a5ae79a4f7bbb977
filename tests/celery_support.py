"""Pytest plugin: fixtures to run a real Celery worker against Redis (see docs/CONTRACTS.md)."""
