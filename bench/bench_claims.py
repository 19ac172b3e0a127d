"""Row k: the claim's latency with 10,000 pending jobs over 50 owners, the fair claim
(round-robin across owners, `SqlJobStore.claim_next`) against the FIFO claim it replaced,
on DuckDB and on PostgreSQL.

The queue holds exactly 10,000 pending jobs while it is measured: after each claim one new
job of the claimed job's owner is added (not timed). Fair and FIFO claims alternate, so
both see the same machine and the same table. Then how long a new owner's one job waits
behind a backlog: claims until it is taken, fair (measured) and FIFO (the jobs ahead).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' PostgreSQL

from sqlalchemy import and_, insert, select, text, update

from forgesyte.db.tables import Job, QueueOwner
from forgesyte.jobs import rules
from forgesyte.jobs.models import JobStatus, utcnow
from forgesyte.jobs.records import JobRecord, NewJob
from forgesyte.jobs.rules import NEVER_SERVED
from forgesyte.jobs.sql_store import SqlJobStore
from tests.support.services import postgres_server

PENDING = 10_000
OWNERS = 50
LEASE_S = 30.0
INSERT_BATCH = 1_000


@dataclass(frozen=True)
class ClaimFigures:
    """One engine's claim latencies (seconds) and the new owner's wait (claims)."""

    engine: str
    fair_s: list[float]
    fifo_s: list[float]
    new_owner_claims_fair: int
    new_owner_claims_fifo: int

    @staticmethod
    def percentile(values: list[float], share: float) -> float:
        """The value below which `share` of the values fall."""
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _row(job_id: uuid.UUID, owner: str, created_at: object) -> dict[str, object]:
    return {
        "job_id": job_id,
        "status": JobStatus.PENDING.value,
        "pipeline_id": "testkit_noop",
        "options": {},
        "input_path": f"videos/{job_id}.mp4",
        "progress": 0.0,
        "attempts": 0,
        "owner": owner,
        "created_at": created_at,
        "updated_at": created_at,
    }


def _fill(store: SqlJobStore, count: int, owners: list[str]) -> None:
    """count pending jobs, owners in turn, a millisecond apart (bulk inserts)."""
    start = utcnow() - timedelta(days=1)
    rows = [
        _row(uuid.uuid4(), owners[i % len(owners)], start + timedelta(milliseconds=i))
        for i in range(count)
    ]
    with store.engine.begin() as connection:
        for first in range(0, len(rows), INSERT_BATCH):
            connection.execute(insert(Job), rows[first : first + INSERT_BATCH])
        # what each job's create does: its owner known to the fair queue, never served
        connection.execute(
            insert(QueueOwner), [{"owner": o, "last_claimed_at": NEVER_SERVED} for o in owners]
        )
        if store.engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))  # as autovacuum does after such an insert


def _add(store: SqlJobStore, owner: str) -> None:
    """One more pending job of owner, through the store (as a submit makes it)."""
    job_id = uuid.uuid4()
    store.create(NewJob(job_id, "testkit_noop", {}, f"videos/{job_id}.mp4", owner=owner))


def fifo_claim(store: SqlJobStore, worker_id: str) -> JobRecord | None:
    """The claim before the fair queue: the oldest pending job, whoever owns it."""
    now = store.clock()
    status, values = rules.claimed(worker_id, now + timedelta(seconds=LEASE_S))
    candidate = (
        select(Job.job_id)
        .where(Job.status == JobStatus.PENDING.value)
        .order_by(Job.created_at, Job.job_id)
        .limit(1)
    )
    statement = (
        update(Job)
        .where(
            and_(
                Job.job_id == store.skip_locked(candidate).scalar_subquery(),
                Job.status == JobStatus.PENDING.value,
            )
        )
        .values(status=status.value, attempts=Job.attempts + 1, updated_at=now, **values)
    )
    return store._update_returning(statement, follow_segments=True)


def _timed(claim: Callable[[], JobRecord | None]) -> tuple[float, JobRecord]:
    started = time.perf_counter()
    job = claim()
    elapsed = time.perf_counter() - started
    assert job is not None
    return elapsed, job


def measure(engine: str, url: str, claims: int, note: Callable[[str], None]) -> ClaimFigures:
    """Claims on a queue of PENDING jobs over OWNERS owners, fair and FIFO alternating."""
    store = SqlJobStore.open(url)
    try:
        owners = [f"owner{i:02d}" for i in range(OWNERS)]
        note(f"k: {engine}: {PENDING:,} pending jobs over {OWNERS} owners")
        _fill(store, PENDING, owners)
        fair: list[float] = []
        fifo: list[float] = []
        for _ in range(5):  # warm both statements (plans, caches)
            for claim in (
                lambda: store.claim_next("bench", LEASE_S),
                lambda: fifo_claim(store, "bench"),
            ):
                _, job = _timed(claim)
                _add(store, job.owner)
        for _ in range(claims):
            for claim, into in (
                (lambda: store.claim_next("bench", LEASE_S), fair),
                (lambda: fifo_claim(store, "bench"), fifo),
            ):
                elapsed, job = _timed(claim)
                into.append(elapsed)
                _add(store, job.owner)
        # a backlog of one owner, then one job of a new owner
        with store.engine.begin() as connection:
            connection.execute(
                update(Job).where(Job.status == JobStatus.PENDING.value).values(owner="backlog")
            )
            connection.execute(
                insert(QueueOwner).values(owner="backlog", last_claimed_at=NEVER_SERVED)
            )
        store.claim_next("bench", LEASE_S)  # the backlog's owner was served just now
        _add(store, "newcomer")
        with store.engine.connect() as connection:
            ahead = connection.execute(
                select(Job.job_id).where(Job.status == JobStatus.PENDING.value)
            ).all()
        waited = 0
        while True:
            waited += 1
            job = store.claim_next("bench", LEASE_S)
            assert job is not None
            if job.owner == "newcomer":
                break
        return ClaimFigures(engine, fair, fifo, waited, len(ahead))
    finally:
        store.close()


@contextmanager
def databases(folder: Path) -> Iterator[list[tuple[str, str]]]:
    """A DuckDB file and a fresh database on a throwaway PostgreSQL server."""
    with postgres_server() as server:
        yield [
            ("duckdb", f"duckdb:///{folder / 'claims.duckdb'}"),
            ("postgresql", server.url(server.create_database())),
        ]


def run(claims: int, note: Callable[[str], None]) -> list[ClaimFigures]:
    """Both engines' figures."""
    with (
        tempfile.TemporaryDirectory(prefix="forgesyte-bench-claims-") as scratch,
        databases(Path(scratch)) as engines,
    ):
        return [measure(engine, url, claims, note) for engine, url in engines]


def median_ms(values: list[float]) -> float:
    """The median in milliseconds."""
    return statistics.median(values) * 1000
