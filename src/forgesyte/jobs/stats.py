"""The values of the monitoring reads (the /metrics route): duration histograms.

The SQL job store computes them in the database, so every API process reports the same
numbers whatever process ran the jobs; `histograms_of` serves the in-memory store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
