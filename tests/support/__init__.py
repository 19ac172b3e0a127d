"""Helpers that start real test services (PostgreSQL, an S3-compatible server)."""
