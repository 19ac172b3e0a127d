"""Read-only aggregates of the jobs table for monitoring (the /metrics route).

Every figure is computed by the database at the time of the call, so each API process
reports the same numbers whatever process ran the jobs. The SQL job store answers
its monitoring reads with the functions here; `histograms_of` serves the in-memory store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Float, case, cast, func, select

from forgesyte.jobs.models import Job, JobStatus

# Job turnaround, submit to end, in seconds: from a short clip to the default job timeout.
DURATION_BUCKETS_S: tuple[float, ...] = (
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
)

UNFINISHED = (JobStatus.PENDING, JobStatus.RUNNING)


def finished_statuses() -> list[JobStatus]:
    """Every status a job ends in: all members but pending and running (a new one included)."""
    return [status for status in JobStatus if status not in UNFINISHED]


@dataclass(frozen=True)
class DurationHistogram:
    """Finished jobs of one pipeline and final status, by turnaround (created -> last update).

    ``bucket_counts[i]`` counts jobs that took at most ``bounds[i]`` seconds (cumulative,
    as Prometheus wants); ``count`` is all of them, ``sum_s`` their total duration.
    """

    pipeline_id: str
    status: str
    bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    count: int
    sum_s: float


def finished_job_durations(
    engine: Engine, bounds: Sequence[float] = DURATION_BUCKETS_S
) -> list[DurationHistogram]:
    """One cumulative histogram of durations per (pipeline_id, final status), in one scan."""
    bounds = tuple(sorted(bounds))
    # EXTRACT(epoch FROM interval): an interval's seconds, on DuckDB and PostgreSQL alike
    # (cast to a double: PostgreSQL's EXTRACT gives numeric)
    duration = cast(func.extract("epoch", Job.updated_at - Job.created_at), Float)
    statement = (
        select(
            Job.pipeline_id,
            Job.status,
            func.count(),
            func.coalesce(func.sum(duration), 0),
            *(func.sum(case((duration <= bound, 1), else_=0)) for bound in bounds),
        )
        .where(Job.status.in_([status.value for status in finished_statuses()]))
        .group_by(Job.pipeline_id, Job.status)
        .order_by(Job.pipeline_id, Job.status)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return [
        DurationHistogram(
            pipeline_id=str(row[0]),
            status=str(row[1]),
            bounds=bounds,
            bucket_counts=tuple(int(n) for n in row[4:]),
            count=int(row[2]),
            sum_s=float(row[3]),
        )
        for row in rows
    ]


def frames_analysed_total(engine: Engine) -> int:
    """Frames analysed by every completed job still in the table (from each job's summary)."""
    frames = Job.result_summary["frames_analysed"].as_integer()
    statement = select(func.coalesce(func.sum(frames), 0)).where(
        Job.status == JobStatus.COMPLETED.value
    )
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def oldest_pending_created_at(engine: Engine) -> datetime | None:
    """When the job that has waited longest in the queue was submitted; None if none waits."""
    statement = select(func.min(Job.created_at)).where(Job.status == JobStatus.PENDING.value)
    with engine.connect() as connection:
        oldest: datetime | None = connection.execute(statement).scalar_one()
    return oldest


def histograms_of(
    durations: Iterable[tuple[str, str, float]], bounds: Sequence[float] = DURATION_BUCKETS_S
) -> list[DurationHistogram]:
    """Cumulative histograms of (pipeline_id, final status, seconds) triples, sorted by key."""
    bounds = tuple(sorted(bounds))
    grouped: dict[tuple[str, str], list[float]] = {}
    for pipeline_id, status, seconds in durations:
        grouped.setdefault((pipeline_id, status), []).append(seconds)
    return [
        DurationHistogram(
            pipeline_id=pipeline_id,
            status=status,
            bounds=bounds,
            bucket_counts=tuple(sum(1 for v in values if v <= bound) for bound in bounds),
            count=len(values),
            sum_s=float(sum(values)),
        )
        for (pipeline_id, status), values in sorted(grouped.items())
    ]
