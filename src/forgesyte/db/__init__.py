"""Database engine and session setup, the tables, and the Alembic migrations."""
