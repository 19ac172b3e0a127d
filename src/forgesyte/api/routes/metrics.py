"""GET /metrics: Prometheus text format, for admin and viewer keys (api/access.py).

Every job figure is read from the job store when Prometheus scrapes, so every API
replica of a scale-out deployment reports the same, correct numbers, whichever process
ran the jobs. Only the `process_*` series describe the answering process itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from forgesyte.api.access import METRICS
from forgesyte.api.deps import ContextDep
from forgesyte.jobs.models import JobStatus, utcnow
from forgesyte.jobs.store import JobMonitoring

router = APIRouter(tags=["metrics"])


class JobMetricsCollector(Collector):
    """The job series, computed from the store at collection time (no in-process state)."""

    def __init__(self, store: JobMonitoring) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Yield the job gauges, the duration histogram and the frames counter."""
        counts = self.store.count_by_status()
        jobs = GaugeMetricFamily(
            "forgesyte_jobs", "Jobs in the store by status.", labels=["status"]
        )
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs

        yield GaugeMetricFamily(
            "forgesyte_queue_depth",
            "Jobs waiting for a worker (status pending).",
            value=counts.get(JobStatus.PENDING.value, 0),
        )

        oldest = self.store.oldest_pending_created_at()
        age_s = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        yield GaugeMetricFamily(
            "forgesyte_oldest_pending_job_age_seconds",
            "Seconds the longest-waiting pending job has waited; 0 when none waits.",
            value=age_s,
        )

        durations = HistogramMetricFamily(
            "forgesyte_job_duration_seconds",
            "Finished jobs by seconds from submit to their final status.",
            labels=["pipeline_id", "status"],
        )
        for histogram in self.store.finished_job_durations():
            buckets = [
                (str(float(bound)), float(count))
                for bound, count in zip(histogram.bounds, histogram.bucket_counts, strict=True)
            ]
            buckets.append(("+Inf", float(histogram.count)))
            durations.add_metric(
                [histogram.pipeline_id, histogram.status], buckets, sum_value=histogram.sum_s
            )
        yield durations

        pending = GaugeMetricFamily(
            "forgesyte_jobs_pending",
            "Pending jobs by owner (the name of the key that submitted them).",
            labels=["owner"],
        )
        # bounded: an owner is a key's name, and only an admin makes keys (plus `admin`)
        for owner, count in sorted(self.store.pending_by_owner().items()):
            pending.add_metric([owner], count)
        yield pending

        yield CounterMetricFamily(
            "forgesyte_frames_analysed",
            "Frames analysed by the completed jobs in the store.",
            value=self.store.frames_analysed_total(),
        )


def render_metrics(store: JobMonitoring) -> bytes:
    """The Prometheus exposition of the job series and this process's own series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobMetricsCollector(store))
    ProcessCollector(registry=registry)
    return generate_latest(registry)


@router.get(
    "/metrics",
    dependencies=[Depends(METRICS)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(context: ContextDep) -> Response:
    """Prometheus metrics: job counts, queue depth and age, durations, frames analysed."""
    body = await run_in_threadpool(render_metrics, context.store)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
