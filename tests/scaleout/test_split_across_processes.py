"""One long job on two worker processes, on PostgreSQL and S3: the process that claims
the job splits it at keyframes, the other process takes segments at once, and the
merged results hold every frame once, in frame order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from forgesyte.db.tables import JobSegment
from forgesyte.jobs.models import SegmentStatus
from tests.scaleout.conftest import ScaleOutDeployment
from tests.segments.videos import write_keyframed_video
from tests.support.server import ServerProcess, WorkerProcess, submit_video, wait_for_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FRAMES = 48  # x 0.2 s (testkit_sleep): about 10 s on one loop
SEGMENT_FRAMES = 8


@pytest.fixture
def api_and_workers(
    deployment: ScaleOutDeployment,
) -> Iterator[tuple[ServerProcess, list[WorkerProcess]]]:
    """The schema migrated, `serve --workers 0`, and two `worker` processes of one loop."""
    env = {
        **deployment.env,
        "FORGESYTE_LEASE_SECONDS": "10",
        "FORGESYTE_SEGMENT_FRAMES": str(SEGMENT_FRAMES),
    }
    with deployment.api_and_workers(deployment.logs / "api", env, 2) as running:
        yield running


def test_two_worker_processes_share_one_split_job(
    api_and_workers: tuple[ServerProcess, list[WorkerProcess]],
    deployment: ScaleOutDeployment,
    tmp_path: Path,
) -> None:
    api, _ = api_and_workers
    video = write_keyframed_video(tmp_path / "long.mp4", FRAMES).read_bytes()
    job_id = submit_video(api.url, video, pipeline_id="testkit_sleep")
    status, seen = wait_for_end(api.url, job_id, timeout_s=180.0)
    assert status.status == "completed", status
    assert any(0 < value < 100 for value in seen), "progress rose over the segments"
    with deployment.engine.connect() as connection:
        segments = connection.execute(
            select(JobSegment.seq, JobSegment.status, JobSegment.lease_owner)
            .where(JobSegment.job_id == job_id)
            .order_by(JobSegment.seq)
        ).all()
    assert len(segments) > 2
    assert all(status == SegmentStatus.DONE.value for _, status, _ in segments)
    pids = {owner.rsplit("-", 2)[1] for _, _, owner in segments}
    assert len(pids) == 2, f"both worker processes took segments: {segments}"
    body = httpx.get(f"{api.url}/v1/video/results/{job_id}", timeout=30).json()
    assert [entry["frame_index"] for entry in body["results"]] == list(range(FRAMES))
    assert deployment.object_keys("segments") == [], "segment objects go once merged"
    assert all(entry["result"] == {"sleep": {}} for entry in body["results"])
