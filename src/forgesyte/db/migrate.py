"""Schema migrations on demand: upgrade to head, downgrade to a revision, current revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

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
