"""Jobs completed before the search index existed are indexed by the backfill that `serve`
and `worker` run at start: on DuckDB and PostgreSQL databases made at revision 0003,
with completed jobs and their timelines in storage, then upgraded to head."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from forgesyte.db.engine import create_db_engine
from forgesyte.db.migrate import upgrade
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.search.backfill import UnindexedJob, backfill_search_index
from forgesyte.search.values import IndexEntries, SearchQuery
from forgesyte.storage.base import Storage, timeline_key
from forgesyte.storage.local import LocalStorage
from tests.support.server import ServerProcess

BEFORE_THE_INDEX = "0003_job_segments"


def _timeline(words: str, class_name: str) -> dict[str, object]:
    return {
        "text": [{"text": words, "start_s": 1.0, "end_s": 2.5, "confidence": 0.95}],
        "objects": [{"class_name": class_name, "start_s": 0.0, "end_s": 3.0, "confidence": 0.7}],
    }


def _store_timeline(storage: Storage, job_id: uuid.UUID, body: bytes) -> None:
    writer = storage.open_writer(timeline_key(job_id))
    writer.write(body)
    writer.commit()


def make_old_database(url: str, storage: Storage) -> dict[str, uuid.UUID]:
    """A database at revision 0003 with jobs as that code left them (and their timelines),
    then upgraded to head: named job ids."""
    engine = create_db_engine(url)
    try:
        upgrade(engine, BEFORE_THE_INDEX)
        jobs = {
            "platform": ("completed", json.dumps(_timeline("PLATFORM 9", "person")).encode()),
            "exit": ("completed", json.dumps(_timeline("EXIT 12", "dog")).encode()),
            "lost": ("completed", None),  # its timeline is gone from storage
            "garbled": ("completed", b"{not json"),
            "failed": ("failed", json.dumps(_timeline("PLATFORM 9", "cat")).encode()),
        }
        ids: dict[str, uuid.UUID] = {}
        with engine.begin() as connection:
            for name, (status, timeline) in jobs.items():
                ids[name] = job_id = uuid.uuid4()
                connection.execute(
                    text(
                        "INSERT INTO jobs (job_id, status, pipeline_id, options, input_path,"
                        " output_path, progress, attempts, created_at, updated_at) VALUES (:id,"
                        " :status, 'detect_ocr', '{}', :video, :results, 100, 1, now(), now())"
                    ),
                    {
                        "id": job_id,
                        "status": status,
                        "video": f"videos/{job_id}.mp4",
                        "results": f"results/{job_id}.jsonl",
                    },
                )
                if timeline is not None:
                    _store_timeline(storage, job_id, timeline)
        upgrade(engine)
    finally:
        engine.dispose()
    return ids


@pytest.fixture(params=["duckdb", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'jobs.duckdb'}"
    return str(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
def old_store(database_url: str, tmp_path: Path) -> Iterator[tuple[SqlJobStore, Storage, dict]]:
    storage = LocalStorage(tmp_path / "storage")
    ids = make_old_database(database_url, storage)
    store = SqlJobStore.open(database_url)
    yield store, storage, ids
    store.close()


class StopsAfterOne:
    """The store, with the backfill's stop asked for once one job is indexed (a process
    stopped half-way)."""

    def __init__(self, store: SqlJobStore, stop: threading.Event) -> None:
        self.store, self.stop = store, stop

    def unindexed_jobs(self, limit: int) -> Sequence[UnindexedJob]:
        return self.store.unindexed_jobs(limit)

    def index_job(self, job_id: uuid.UUID, entries: IndexEntries) -> bool:
        self.stop.set()
        return self.store.index_job(job_id, entries)


def _found(store: SqlJobStore, q: str, kind: str | None = None) -> set[uuid.UUID]:
    return {hit.job_id for hit in store.search(SearchQuery.parse(q, kind, limit=50))}


def test_the_backfill_indexes_older_completed_jobs_once_and_resumes(
    old_store: tuple[SqlJobStore, Storage, dict[str, uuid.UUID]],
) -> None:
    store, storage, ids = old_store
    completed = {ids["platform"], ids["exit"], ids["lost"], ids["garbled"]}
    assert {job.job_id for job in store.unindexed_jobs(10)} == completed
    assert _found(store, "platform 9") == set()

    stop = threading.Event()
    first = backfill_search_index(StopsAfterOne(store, stop), storage, stop)
    assert len(first.indexed) == 1  # stopped half-way: the rest waits for the next start
    assert len(store.unindexed_jobs(10)) == 3

    rest = backfill_search_index(store, storage)
    assert set(first.indexed) | set(rest.indexed) == completed
    assert set(rest.without_timeline) <= {ids["lost"], ids["garbled"]}
    assert store.unindexed_jobs(10) == []
    assert _found(store, "PLATF0RM 9") == {ids["platform"]}  # not the failed job's
    assert _found(store, "exit 12", None) == {ids["exit"]}
    assert _found(store, "dog", "object") == {ids["exit"]}
    assert backfill_search_index(store, storage).indexed == []  # nothing twice

    assert store.delete(ids["platform"]) is not None  # and gone with its job
    assert _found(store, "platform 9") == set()


def test_serve_runs_the_backfill_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    storage = LocalStorage(data_dir / "storage")
    ids = make_old_database(f"duckdb:///{data_dir / 'forgesyte.duckdb'}", storage)
    server = ServerProcess(data_dir, workers=0).start()
    try:
        deadline = time.monotonic() + 30
        matches: list[dict[str, object]] = []
        while time.monotonic() < deadline and not matches:
            answer = httpx.get(f"{server.url}/v1/search", params={"q": "platform 9"}, timeout=10)
            matches = answer.json()["matches"]
            time.sleep(0.2)
        assert [m["job_id"] for m in matches] == [str(ids["platform"])], server.log_text()
        assert "search backfill: indexed 4 completed job(s)" in server.log_text()
    finally:
        server.terminate()
