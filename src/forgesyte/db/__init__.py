"""Database engine and session setup, and the Alembic migrations."""
