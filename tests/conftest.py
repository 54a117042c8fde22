"""Shared fixtures. The ``database_url`` fixture comes from the luser_db.testing plugin."""
