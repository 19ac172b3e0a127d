"""Row u: the source route under 20 concurrent readers of a 1 GiB video, local and S3.

A completed job is written into a fresh server's database and storage before it starts
(a 1 GiB upload through the API would measure the upload); then 20 threads each read the
video through `GET /v1/video/source/{job_id}` with one open-ended range from a random
offset, as a browser does after a seek, while the server's resident memory is sampled.
On S3 (a moto server) the route turns each answer into ranged GetObjects of 8 MiB.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from bench_results import PeakRss
from bench_server import Server
from bench_videos import CACHE_DIR

from forgesyte.jobs.records import NewJob
from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.storage.base import Storage, results_key, video_key
from forgesyte.storage.local import LocalStorage
from forgesyte.storage.s3 import S3Storage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.services import FAKE_AWS_ENV, s3_server

MiB = 1024 * 1024
BLOCK = 8 * MiB  # the file is written, and copied into storage, this much at a time
READ_CHUNK = 256 * 1024  # what a reader takes off the socket at a time
SAMPLE_INTERVAL_S = 0.01


@dataclass(frozen=True)
class SourceRun:
    """What row u measured on one storage."""

    storage: str
    readers: int
    file_bytes: int
    read_bytes: int
    seconds: float
    rss_before_mib: float
    rss_peak_mib: float

    @property
    def rise_mib(self) -> float:
        """How far the server's memory rose while the readers read."""
        return self.rss_peak_mib - self.rss_before_mib

    @property
    def throughput_mib_s(self) -> float:
        """All readers together, MiB/s."""
        return self.read_bytes / MiB / self.seconds


def big_file(size: int) -> Path:
    """A file of `size` bytes behind an `ftyp` box (cached), different in every block."""
    path = CACHE_DIR / f"source-{size // MiB}m.bin"
    if path.exists() and path.stat().st_size == size:
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    noise = random.Random(size).randbytes(BLOCK)
    with path.open("wb") as out:
        out.write(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
        written = 24
        block = 0
        while written < size:
            piece = block.to_bytes(8, "big") + noise[8 : min(BLOCK, size - written)]
            out.write(piece[: size - written])
            written += len(piece[: size - written])
            block += 1
    return path


def _store_video(storage: Storage, key: str, path: Path) -> None:
    writer = storage.open_writer(key)
    with path.open("rb") as source:
        while chunk := source.read(BLOCK):
            writer.write(chunk)
    writer.commit()


def _completed_job(server: Server, storage: Storage, video: Path) -> str:
    """A completed job whose upload plays as it is, in the server's database and storage."""
    store = SqlJobStore.open(f"duckdb:///{server.data_dir / 'forgesyte.duckdb'}")
    try:
        job_id = uuid.uuid4()
        _store_video(storage, video_key(job_id), video)
        storage.put_bytes(results_key(job_id), b"")
        store.create(NewJob(job_id, "testkit_noop", {}, video_key(job_id)))
        assert store.claim_next("bench", 60) is not None
        summary = {"frames_analysed": 0, "video": {}, "playback": {"codec": "h264", "copy": False}}
        assert store.complete(job_id, "bench", results_key(job_id), summary)
    finally:
        store.close()
    return str(job_id)


def _read(url: str, start: int, length: int, counted: list[int]) -> None:
    """Read `length` bytes of the video from `start` on, with one open-ended range."""
    got = 0
    with (
        httpx.Client(timeout=600) as client,
        client.stream("GET", url, headers={"Range": f"bytes={start}-"}) as answer,
    ):
        if answer.status_code != 206:
            raise RuntimeError(f"the source route answered {answer.status_code}")
        for chunk in answer.iter_bytes(READ_CHUNK):
            got += len(chunk)
            if got >= length:
                break
    counted.append(min(got, length))


def read_concurrently(
    storage_name: str,
    video: Path,
    readers: int,
    per_reader: int,
    env: dict[str, str],
    storage_of: Callable[[Server], Storage],
) -> SourceRun:
    """Start a server on a storage, store a job there, and read it with `readers` threads."""
    size = video.stat().st_size
    server = Server(workers=0, env=env)
    job_id = _completed_job(server, storage_of(server), video)
    with server:
        url = f"{server.url}/v1/video/source/{job_id}"
        _read(url, 0, 16 * MiB, [])  # warm: the first answer's allocations
        counted: list[int] = []
        draw = random.Random(readers)
        threads = [
            threading.Thread(
                target=_read,
                args=(url, draw.randrange(0, max(1, size - per_reader)), per_reader, counted),
            )
            for _ in range(readers)
        ]
        with PeakRss(server.pid, SAMPLE_INTERVAL_S) as memory:
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
    if len(counted) != readers:
        raise RuntimeError(f"{readers - len(counted)} reader(s) failed")
    before_mib, peak_mib = memory.before_kib / 1024, memory.peak_kib / 1024
    return SourceRun(storage_name, readers, size, sum(counted), seconds, before_mib, peak_mib)


def local_run(size: int, readers: int, per_reader: int) -> SourceRun:
    """Row r on local storage."""
    return read_concurrently(
        "local",
        big_file(size),
        readers,
        per_reader,
        {},
        lambda server: LocalStorage(server.data_dir / "storage"),
    )


def s3_run(size: int, readers: int, per_reader: int) -> SourceRun:
    """Row r on S3: a moto server started here, a bucket with the video, the server on it."""
    os.environ.update(FAKE_AWS_ENV)  # this process's S3 client, and the server's
    with s3_server() as moto:
        bucket = "bench-source"
        storage = S3Storage(bucket, "bench", endpoint_url=moto.endpoint_url)
        storage.client.create_bucket(Bucket=bucket)
        env = {
            "FORGESYTE_STORAGE_URL": f"s3://{bucket}/bench",
            "FORGESYTE_S3_ENDPOINT_URL": moto.endpoint_url,
            **FAKE_AWS_ENV,
        }
        return read_concurrently(
            "S3 (moto)", big_file(size), readers, per_reader, env, lambda _: storage
        )
