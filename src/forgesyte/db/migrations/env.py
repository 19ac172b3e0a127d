"""Alembic environment: runs ForgeSyte's migrations on the engine the caller passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from forgesyte.db import migrate  # noqa: F401  (registers Alembic's DuckDB impl)
from forgesyte.db.engine import create_db_engine
from forgesyte.db.tables import Base


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on the connection in config.attributes, or on the configured URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


run_migrations_online()
