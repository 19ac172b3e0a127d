"""A real `forgesyte serve` on PostgreSQL and S3: uploads, video reads, results.

Uploads stream up as multipart uploads, the worker reads the video from the bucket
and writes the results back to it, and a refused or abandoned upload leaves no
object and no unfinished upload behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from forgesyte.db.tables import Job
from forgesyte.storage.s3 import DEFAULT_PART_SIZE
from tests.scaleout.conftest import S3_PREFIX, ScaleOutDeployment
from tests.support.server import ServerProcess, streamed_submit, wait_for_end
from tests.support.videos import padded_mp4, write_counter_video

pytestmark = pytest.mark.e2e  # real forgesyte processes

MiB = 1024 * 1024
UPLOAD_LIMIT_MB = 20


@pytest.fixture
def server(deployment: ScaleOutDeployment, tmp_path: Path) -> Iterator[ServerProcess]:
    """`forgesyte serve --workers 1` on the deployment's PostgreSQL and bucket."""
    env = {**deployment.env, "FORGESYTE_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB)}
    server = ServerProcess(tmp_path / "server", workers=1, env=env).start()
    yield server
    code = server.terminate()
    assert code == 0, f"the server exited with {code}:\n{server.log_text()}"


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_counter_video(tmp_path_factory.mktemp("v") / "small.mp4", 12, fps=10.0)


def _wait_for_parts(deployment: ScaleOutDeployment, parts: int, timeout_s: float = 20.0) -> str:
    """Wait until one multipart upload is open with at least `parts` parts; its key."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        uploads = deployment.s3.list_multipart_uploads(Bucket=deployment.bucket).get("Uploads", [])
        if len(uploads) == 1:
            upload = uploads[0]
            listed = deployment.s3.list_parts(
                Bucket=deployment.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            if len(listed.get("Parts", [])) >= parts:
                return str(upload["Key"])
        time.sleep(0.05)
    raise AssertionError(f"no multipart upload with {parts} part(s) appeared in {timeout_s} s")


def _job_rows(deployment: ScaleOutDeployment) -> int:
    with deployment.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Job)).scalar_one())


def test_an_upload_streams_to_s3_in_parts_and_the_results_are_written_there(
    server: ServerProcess, deployment: ScaleOutDeployment, small_video: Path, tmp_path: Path
) -> None:
    video = padded_mp4(small_video, tmp_path / "big.mp4", 2 * DEFAULT_PART_SIZE + MiB).read_bytes()
    seen: dict[str, object] = {}

    def while_uploading() -> None:
        # the first part is in the bucket while the client is still sending the rest
        key = _wait_for_parts(deployment, 1)
        missing = deployment.s3.list_objects_v2(Bucket=deployment.bucket).get("KeyCount", 0)
        seen.update(key=key, visible_objects=missing)

    response = streamed_submit(
        server.url,
        video,
        after=(DEFAULT_PART_SIZE + 2 * MiB, while_uploading),
        pipeline_id="testkit_grey",
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    video_key = f"{S3_PREFIX}/videos/{job_id}.mp4"
    assert seen == {"key": video_key, "visible_objects": 0}, "nothing visible before commit"

    status, _ = wait_for_end(server.url, job_id, timeout_s=60)
    assert status.status == "completed", status
    stored = deployment.s3.get_object(Bucket=deployment.bucket, Key=video_key)
    assert stored["ETag"].strip('"').endswith("-3"), "uploaded as three parts"
    assert stored["Body"].read() == video
    assert deployment.unfinished_uploads() == []

    results = httpx.get(f"{server.url}/v1/video/results/{job_id}", timeout=10).json()
    assert [entry["frame_index"] for entry in results["results"]] == list(range(12))
    raw = deployment.s3.get_object(
        Bucket=deployment.bucket, Key=f"{S3_PREFIX}/results/{job_id}.jsonl"
    )["Body"].read()
    assert [json.loads(line) for line in raw.splitlines()] == results["results"]
    assert deployment.object_keys("results") == [f"results/{job_id}.jsonl"]
    with deployment.engine.connect() as connection:
        row = connection.execute(
            select(Job.output_path, Job.worker_id, Job.attempts).where(Job.job_id == job_id)
        ).one()
    assert row.output_path == f"results/{job_id}.jsonl" and row.attempts == 1
    assert row.worker_id is not None and f"-{server.process.pid}-0" in row.worker_id  # type: ignore[union-attr]


def test_refused_and_abandoned_uploads_leave_nothing_in_the_bucket(
    server: ServerProcess, deployment: ScaleOutDeployment, small_video: Path, tmp_path: Path
) -> None:
    # over the limit, found out only after two parts went up: the upload is aborted
    too_big = padded_mp4(small_video, tmp_path / "too-big.mp4", (UPLOAD_LIMIT_MB + 4) * MiB)
    response = streamed_submit(
        server.url,
        too_big.read_bytes(),
        after=(2 * DEFAULT_PART_SIZE + MiB, lambda: _wait_for_parts(deployment, 2) and None),
    )
    assert response.status_code == 413, response.text
    assert "limit" in response.json()["detail"]
    assert deployment.unfinished_uploads() == []

    # the client goes away after the first part went up
    class ClientGaveUp(Exception):
        pass

    def give_up() -> None:
        _wait_for_parts(deployment, 1)
        raise ClientGaveUp

    big = padded_mp4(small_video, tmp_path / "big.mp4", 2 * DEFAULT_PART_SIZE)
    with pytest.raises(ClientGaveUp):
        streamed_submit(server.url, big.read_bytes(), after=(DEFAULT_PART_SIZE + 2 * MiB, give_up))
    deadline = time.monotonic() + 20
    while deployment.unfinished_uploads() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert deployment.unfinished_uploads() == []

    # not an MP4
    response = streamed_submit(server.url, b"GIF89a" + bytes(4 * MiB))
    assert response.status_code == 400 and "not an MP4" in response.json()["detail"]

    assert deployment.s3.list_objects_v2(Bucket=deployment.bucket).get("KeyCount", 0) == 0
    assert _job_rows(deployment) == 0
