"""Start-up against a hostile configuration: an empty API key, a public bind with no key, a
broken pipelines folder and a disk too small for the upload limit, on real `serve` processes;
and the storage sweep against abandoned S3 multipart uploads on the moto server."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.runtime import sweep_storage
from forgesyte.storage.s3 import S3Storage
from tests.support.server import FORGESYTE, free_port, submit
from tests.support.videos import write_counter_video

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PIPELINE = (
    '{"id": "ok_pipeline", "description": "fine", "entry_nodes": ["grey"], '
    '"output_nodes": ["grey"], "nodes": [{"id": "grey", "plugin_type": "testkit", '
    '"tool_type": "grey", "input_types": ["image"], "output_types": ["number"]}], "edges": []}'
)


def _serve(data_dir: Path, host: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """Start `forgesyte serve` on host with env added (API key unset unless given)."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k != "FORGESYTE_API_KEY"}
    process = subprocess.Popen(
        [FORGESYTE, "serve", "--host", host, "--port", str(port), "--workers", "0"],
        env={**base, "FORGESYTE_DATA_DIR": str(data_dir), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, port


def _wait_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not answer"
        time.sleep(0.2)


def test_an_empty_api_key_refuses_to_start(tmp_path: Path) -> None:
    process, _ = _serve(tmp_path, "127.0.0.1", {"FORGESYTE_API_KEY": ""})
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [
        "forgesyte: FORGESYTE_API_KEY is set but empty; set a key, or unset it to run "
        "without authentication"
    ]


@dataclass(frozen=True)
class PublicServer:
    """The shared public server of this module: its URL, log file, data folder, pipelines."""

    url: str
    log_file: Path
    data_dir: Path
    pipelines: Path


def _broken_pipelines(root: Path) -> Path:
    """A pipelines folder with one good file and four that cannot be pipelines."""
    folder = root / "pipelines"
    folder.mkdir()
    (folder / "good.json").write_text(PIPELINE)
    (folder / "latin1.json").write_bytes(b'{"id": "caf\xe9"}')
    (folder / "folder.json").mkdir()
    (folder / "dangling.json").symlink_to(root / "nowhere.json")
    (folder / "bad.json").write_text('{"id": ')
    return folder


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PublicServer]:
    """One server for this module's tests (each only reads it, or is refused by it).

    It binds 0.0.0.0 with no key, reads the broken pipelines folder and has a 1 PiB
    upload limit.
    """
    root = tmp_path_factory.mktemp("public")
    server = PublicServer(
        url="",
        log_file=root / "server.log",
        data_dir=root / "data",
        pipelines=_broken_pipelines(root),
    )
    env = {
        "FORGESYTE_PIPELINES_DIR": str(server.pipelines),
        "FORGESYTE_MAX_UPLOAD_MB": str(1 << 30),  # more than any test disk has free
        "FORGESYTE_LOG_FILE": str(server.log_file),
    }
    process, port = _serve(server.data_dir, "0.0.0.0", env)
    try:
        _wait_healthy(process, port)
        yield dataclasses.replace(server, url=f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_a_public_bind_without_a_key_warns(public_server: PublicServer) -> None:
    assert "serving on 0.0.0.0 with no FORGESYTE_API_KEY" in public_server.log_file.read_text()


def test_unreadable_pipeline_files_are_refused_with_their_reason(
    public_server: PublicServer,
) -> None:
    body = httpx.get(f"{public_server.url}/v1/pipelines", timeout=10).json()
    refused = body["refused_pipelines"]
    assert all(source.startswith("pipelines_dir/") for source in refused)
    assert str(public_server.pipelines) not in json.dumps(refused)  # no server path is shown
    reasons = {Path(source).name: reason for source, reason in refused.items()}
    assert "not UTF-8 text" in reasons["latin1.json"]
    assert "not a regular file" in reasons["folder.json"]
    assert "a broken symlink" in reasons["dangling.json"]
    assert "not valid JSON" in reasons["bad.json"]
    assert "good.json" not in reasons
    assert "ok_pipeline" in {pipeline["id"] for pipeline in body["pipelines"]}


def test_too_little_free_disk_for_the_size_limit_gets_507(
    public_server: PublicServer, tmp_path: Path
) -> None:
    video = write_counter_video(tmp_path / "v.mp4", 5, size_wh=(96, 64)).read_bytes()
    response = submit(public_server.url, video)
    assert response.status_code == 507, response.text
    assert "free disk space" in response.json()["detail"]
    assert not list((public_server.data_dir / "storage").rglob("*.mp4*"))


def test_the_sweep_aborts_abandoned_s3_multipart_uploads(
    s3_client: S3Client, s3_bucket: str
) -> None:
    storage = S3Storage(s3_bucket, "forgesyte", client=s3_client)
    abandoned = s3_client.create_multipart_upload(
        Bucket=s3_bucket, Key=f"forgesyte/videos/{uuid.uuid4()}.mp4"
    )
    s3_client.upload_part(
        Bucket=s3_bucket,
        Key=abandoned["Key"],
        UploadId=abandoned["UploadId"],
        PartNumber=1,
        Body=b"x" * 1024,
    )
    outside = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="other-app/file.bin")
    store = InMemoryJobStore()
    # an upload whose last part is recent (another process may still be sending it) is kept
    assert sweep_storage(store, storage, min_age_s=600) == []
    assert len(s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])) == 2
    removed = sweep_storage(store, storage, min_age_s=0)
    assert removed == [abandoned["Key"].removeprefix("forgesyte/")]
    left = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [upload["UploadId"] for upload in left] == [outside["UploadId"]]
