"""The DuckDB engine compiles a statement once and reuses it (SQLAlchemy's statement cache)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine.default import CACHE_HIT

from forgesyte.db.engine import CachingDuckDBDialect, create_db_engine
from forgesyte.db.tables import Job
from forgesyte.jobs.models import JobStatus


def test_duckdb_statements_are_compiled_once(tmp_path: Path) -> None:
    engine = create_db_engine(f"duckdb:///{tmp_path / 'jobs.duckdb'}")
    try:
        assert isinstance(engine.dialect, CachingDuckDBDialect)
        assert engine.dialect.name == "duckdb" and engine.url.get_backend_name() == "duckdb"
        Job.metadata.create_all(engine)
        compiled: list[bool] = []
        with engine.connect() as connection:
            for status in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.PENDING):
                query = select(Job.job_id).where(Job.status == status.value)
                result = connection.execute(query)
                compiled.append(result.context.cache_hit is CACHE_HIT)
                assert result.all() == []
        assert compiled == [False, True, True]  # one compilation, parameters bound anew
    finally:
        engine.dispose()
