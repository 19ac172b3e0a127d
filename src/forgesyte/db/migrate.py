"""Schema migrations on demand: upgrade to head, downgrade to a revision, current revision.

`open_engine` and `run_schema_command` are what the CLI and the runtime call: they take a
URL, so no engine leaves `db/` and `jobs/`, and a DuckDB file held by another process is
reported as a DatabaseLockedError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from forgesyte.db.engine import create_db_engine, lock_errors_translated

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 7_246_513_318  # PostgreSQL advisory lock held while migrating


class DuckDBImpl(DefaultImpl):
    """Teach Alembic the duckdb dialect (it behaves like PostgreSQL for our DDL).

    Defined here, not in migrations/env.py, so that current_revision() works on
    DuckDB before any migration has run in the process.
    """

    __dialect__ = "duckdb"
    transactional_ddl = True


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that runs ForgeSyte's migrations on this engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to a revision (default: the newest)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # a migration (and the wait for another process's) may outlast the engine's
            # statement timeout: none for this transaction
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            # API and worker processes may start together: one migrates, the others wait
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema to a revision ("base" removes every table)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


SchemaCommand = Literal["upgrade", "downgrade", "current"]


def open_engine(url: str, *, upgrade_schema: bool = True) -> Engine:
    """An engine on the database at url, connected once (schema upgraded to head if asked).

    Raises DatabaseLockedError when a DuckDB file is held by another process.
    """
    engine = create_db_engine(url)
    try:
        with lock_errors_translated(url):
            if upgrade_schema:
                upgrade(engine)
            else:
                with engine.connect():
                    pass  # DuckDB takes its file lock here: fail now, not in a worker
    except Exception:
        engine.dispose()
        raise
    return engine


def run_schema_command(url: str, command: SchemaCommand, revision: str | None = None) -> str | None:
    """Upgrade or downgrade the database at url (or only look), and return its revision.

    Raises DatabaseLockedError when a DuckDB file is held by another process.
    """
    engine = create_db_engine(url)
    try:
        with lock_errors_translated(url):
            if command == "upgrade":
                upgrade(engine, revision or "head")
            elif command == "downgrade":
                if revision is None:
                    raise ValueError("a downgrade needs a revision")
                downgrade(engine, revision)
            return current_revision(engine)
    finally:
        engine.dispose()
