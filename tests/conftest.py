"""Shared fixtures: a real DuckDB file with the schema, local storage, test videos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from forgesyte.db import migrate
from forgesyte.db.engine import create_db_engine
from forgesyte.jobs.store import JobStore
from forgesyte.storage.local import LocalStorage
from tests.support.videos import write_text_video

pytest_plugins = ["tests.support.fixtures", "tests.support.no_skips"]

SCORE_TEXT = "SCORE 2-1"
HALF_TIME_TEXT = "HALF TIME"


@pytest.fixture
def duckdb_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a fresh DuckDB file with the schema at head."""
    engine = create_db_engine(f"duckdb:///{tmp_path / 'jobs.duckdb'}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(duckdb_engine: Engine) -> JobStore:
    """A job store on a fresh DuckDB file."""
    return JobStore(duckdb_engine)


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    """Local storage in a temporary folder."""
    return LocalStorage(tmp_path / "storage")


@pytest.fixture(scope="session")
def score_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames at 10 fps: 'SCORE 2-1' on frames 0-9, 'HALF TIME' on frames 10-19."""
    path = tmp_path_factory.mktemp("videos") / "score.mp4"
    return write_text_video(path, [SCORE_TEXT] * 10 + [HALF_TIME_TEXT] * 10)
