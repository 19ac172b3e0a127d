"""Scale-out for real: one API process and three worker processes on PostgreSQL and S3.

12 jobs go in through the API; one worker process is killed with SIGKILL while it
holds a running job. Every job must complete exactly once (claimed once, one results
object), except the killed worker's jobs, which are claimed once more after their
lease expires and then complete on a surviving worker.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from forgesyte.db.tables import Job
from forgesyte.jobs.models import JobStatus
from tests.scaleout.conftest import ScaleOutDeployment
from tests.support.server import ServerProcess, WorkerProcess, submit
from tests.support.videos import write_counter_video

# real forgesyte processes; starting six warm analysis children takes minutes on a busy machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WORKER_PROCESSES = 3
CONCURRENCY = 2  # worker loops per process
GREY_JOBS = 6  # cheap: a grey level per frame of a tiny video; queued behind the slow ones
SLEEP_JOBS = 6  # 15 frames x 0.2 s: 3 s each, so some jobs are mid-flight when the kill comes
SLEEP_FRAMES = 15
GREY_FRAMES = 6
LEASE_SECONDS = 3
RUN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Claim:
    """A job row as the test sees it: who holds or held it, and how often it was claimed."""

    job_id: uuid.UUID
    status: str
    pipeline_id: str
    progress: float
    attempts: int
    worker_id: str | None

    @property
    def pid(self) -> int | None:
        """The pid of the worker process in the worker id `<hostname>-<pid>-<loop index>`."""
        if self.worker_id is None:
            return None
        return int(self.worker_id.rsplit("-", 2)[1])


def _claims(deployment: ScaleOutDeployment) -> list[Claim]:
    with deployment.engine.connect() as connection:
        rows = connection.execute(
            select(
                Job.job_id, Job.status, Job.pipeline_id, Job.progress, Job.attempts, Job.worker_id
            )
        ).all()
    return [Claim(*row) for row in rows]


@pytest.fixture
def processes(
    deployment: ScaleOutDeployment, tmp_path: Path
) -> Iterator[tuple[ServerProcess, list[WorkerProcess]]]:
    """The schema migrated once, then `serve --workers 0` and three `worker` processes.

    The jobs go in once every worker loop's analysis child has loaded, so that all
    three processes compete for them from the first one.
    """
    env = {
        **deployment.env,
        "FORGESYTE_LEASE_SECONDS": str(LEASE_SECONDS),
        "FORGESYTE_SHUTDOWN_GRACE_S": "5",
    }
    with deployment.api_and_workers(
        tmp_path / "api", env, WORKER_PROCESSES, CONCURRENCY
    ) as running:
        yield running


def _logs(workers: list[WorkerProcess]) -> str:
    return "\n".join(f"--- worker {w.pid}:\n{w.log_text()[-3000:]}" for w in workers)


def test_three_worker_processes_run_12_jobs_and_survive_a_kill(
    processes: tuple[ServerProcess, list[WorkerProcess]],
    deployment: ScaleOutDeployment,
    tmp_path: Path,
    report_figures: list[str],
) -> None:
    api, workers = processes
    by_pid = {worker.pid: worker for worker in workers}
    grey_video = write_counter_video(tmp_path / "grey.mp4", GREY_FRAMES).read_bytes()
    sleep_video = write_counter_video(tmp_path / "sleep.mp4", SLEEP_FRAMES).read_bytes()

    # the sleep jobs go first, so every worker loop starts on a slow job
    started = time.monotonic()
    job_ids: list[str] = []
    for index in range(SLEEP_JOBS + GREY_JOBS):
        slow = index < SLEEP_JOBS
        response = submit(
            api.url,
            sleep_video if slow else grey_video,
            pipeline_id="testkit_sleep" if slow else "testkit_grey",
        )
        assert response.status_code == 200, response.text
        job_ids.append(response.json()["job_id"])
    submitted_s = time.monotonic() - started

    # kill -9 a worker process while it is inside a job (a slow job with progress)
    most_held: Counter[int] = Counter()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    victim: WorkerProcess | None = None
    while victim is None:
        assert time.monotonic() < deadline, "no worker got into a slow job:\n" + _logs(workers)
        running = [c for c in _claims(deployment) if c.status == JobStatus.RUNNING.value]
        held = Counter(c.pid for c in running if c.pid in by_pid)
        for pid, count in held.items():
            assert pid is not None
            most_held[pid] = max(most_held[pid], count)
        for claim in running:
            if claim.pipeline_id == "testkit_sleep" and claim.progress > 0 and claim.pid in by_pid:
                victim = by_pid[claim.pid]
                break
        else:
            time.sleep(0.05)
    assert victim is not None
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert victim.process is not None and victim.process.wait(timeout=10) == -signal.SIGKILL
    # the victim is reaped and its lease has not run out: its jobs still show it as holder
    orphaned = {
        c.job_id
        for c in _claims(deployment)
        if c.status == JobStatus.RUNNING.value and c.pid == victim.pid
    }
    assert orphaned, "the killed worker held a running job"
    survivors = [worker for worker in workers if worker is not victim]

    # every job ends, none is lost
    recovered_s: float | None = None
    while True:
        claims = _claims(deployment)
        for pid, count in Counter(
            c.pid for c in claims if c.status == JobStatus.RUNNING.value
        ).items():
            if pid is not None:
                most_held[pid] = max(most_held[pid], count)
        by_id = {c.job_id: c for c in claims}
        if recovered_s is None and all(
            by_id[job_id].status == JobStatus.COMPLETED.value for job_id in orphaned
        ):
            recovered_s = time.monotonic() - killed_at
        if all(c.status in (JobStatus.COMPLETED.value, JobStatus.FAILED.value) for c in claims):
            break
        assert time.monotonic() < deadline, "jobs did not finish:\n" + _logs(survivors)
        time.sleep(0.1)
    wall_s = time.monotonic() - started

    assert len(claims) == len(job_ids) == SLEEP_JOBS + GREY_JOBS
    assert {str(c.job_id) for c in claims} == set(job_ids)
    failed = [c for c in claims if c.status != JobStatus.COMPLETED.value]
    assert failed == [], _logs(survivors)
    for claim in claims:
        if claim.job_id in orphaned:
            # claimed once by the killed worker, once more by a survivor, which completed it
            assert claim.attempts == 2 and claim.pid in {w.pid for w in survivors}
        else:
            assert claim.attempts == 1, claim

    # through the API: completed, with every analysed frame
    with httpx.Client(base_url=api.url, timeout=10) as client:
        for job_id in job_ids:
            status = client.get(f"/v1/video/status/{job_id}").json()
            assert (status["status"], status["progress"]) == ("completed", 100.0)
            results = client.get(f"/v1/video/results/{job_id}").json()
            frames = SLEEP_FRAMES if results["pipeline_id"] == "testkit_sleep" else GREY_FRAMES
            assert [entry["frame_index"] for entry in results["results"]] == list(range(frames))

    # one video and one results object per job, no upload left unfinished
    assert deployment.object_keys("videos") == sorted(f"videos/{j}.mp4" for j in job_ids)
    assert deployment.object_keys("results") == sorted(f"results/{j}.jsonl" for j in job_ids)
    assert deployment.object_keys("timelines") == sorted(f"timelines/{j}.json" for j in job_ids)
    assert deployment.unfinished_uploads() == []

    # each job completed exactly once, across all worker processes
    completions = Counter(
        match.group(1)
        for worker in workers
        for match in re.finditer(r"job ([0-9a-f-]{36}): completed", worker.log_text())
    )
    assert completions == Counter(job_ids), _logs(workers)
    for worker in survivors:
        assert "crashed" not in worker.log_text(), worker.log_text()
    assert max(most_held.values()) == CONCURRENCY, "no worker process ran jobs side by side"

    # the survivors stop cleanly on SIGTERM; so does the API
    for worker in survivors:
        assert worker.terminate() == 0, worker.log_text()
    assert api.terminate() == 0, api.log_text()

    # figures: completions from jobs.worker_id (complete() keeps it); the killed worker's
    # claims of the jobs it lost were taken over by the survivors that re-ran them
    completed_by = Counter(c.worker_id for c in claims)
    per_process = Counter(c.pid for c in claims)
    assert all(per_process[w.pid] > 0 for w in survivors), completed_by
    host = os.uname().nodename

    def describe(index: int, worker: WorkerProcess) -> str:
        loops = "/".join(str(completed_by[f"{host}-{worker.pid}-{i}"]) for i in range(CONCURRENCY))
        text = f"worker {index + 1}: {per_process[worker.pid]} completed (loops {loops})"
        if worker is victim:
            text += f" + {len(orphaned)} claimed and lost to SIGKILL"
        return text

    lines = [
        f"{len(claims)} jobs ({SLEEP_JOBS} testkit_sleep of {SLEEP_FRAMES} frames, {GREY_JOBS} "
        f"testkit_grey of {GREY_FRAMES} frames); API: serve --workers 0; {WORKER_PROCESSES} "
        f"x worker --concurrency {CONCURRENCY}; PostgreSQL + S3 (moto); lease {LEASE_SECONDS} s",
        f"wall time {wall_s:.1f} s from the first submit to the last job completed "
        f"(submitting took {submitted_s:.1f} s); {sum(c.attempts for c in claims)} claims",
        f"worker {workers.index(victim) + 1} (pid {victim.pid}) killed with SIGKILL holding "
        f"{len(orphaned)} running job(s); they completed on a survivor "
        f"{recovered_s or 0:.1f} s later",
        "per worker: " + "; ".join(describe(i, w) for i, w in enumerate(workers)),
    ]
    report_figures.extend(lines)
    print("\n".join(lines))
