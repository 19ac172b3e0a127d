"""Row i: a job of many analysed frames, its full results fetched 8 times at once.

Prints the API process's resident memory rise during the requests and the analysis
child's peak RSS (VmHWM) before and after the long job.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import httpx
from bench_server import Server


def status_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status field in KiB (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def analysis_child(pid: int) -> int:
    """The pid of the server's analysis child (its child with the largest memory)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pid:
            children.append(int(entry))
    if not children:
        raise RuntimeError("the server has no analysis child")
    return max(children, key=lambda child: status_kib(child, "VmRSS"))


class PeakRss:
    """A process's resident memory before a block (`before_kib`) and at its peak during it
    (`peak_kib`), sampled every interval_s on a thread of its own."""

    def __init__(self, pid: int, interval_s: float = 0.005) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.before_kib = self.peak_kib = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, status_kib(self.pid, "VmRSS"))
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.before_kib = self.peak_kib = status_kib(self.pid, "VmRSS")
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._sampler.join()


@dataclass(frozen=True)
class LongResults:
    """What row i measured."""

    frames: int
    job_s: float
    results_bytes: int
    requests_s: float
    api_baseline_mib: float
    api_rise_mib: float
    short_frames: int
    child_peak_short_mib: float
    child_peak_long_mib: float


def _fetch_all(client: httpx.Client, url: str) -> int:
    """Stream one full results answer, counting its bytes without keeping them."""
    size = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
    return size


def long_results(
    video: bytes, frames: int, short_video: bytes, short_frames: int, concurrent: int = 8
) -> LongResults:
    """Run a short then a long testkit_noop job, then `concurrent` full-results requests.

    The child's peak RSS after the short job and after the long one shows whether the
    child's memory grows with the video's length.
    """
    with Server(workers=1) as server:
        server.wait(server.submit(short_video, "testkit_noop"), poll_s=0.1)
        short_peak = status_kib(analysis_child(server.pid), "VmHWM") / 1024
        start = time.perf_counter()
        job_id = server.submit(video, "testkit_noop")
        server.wait(job_id, poll_s=0.2)
        job_s = time.perf_counter() - start
        long_peak = status_kib(analysis_child(server.pid), "VmHWM") / 1024
        url = f"{server.url}/v1/video/results/{job_id}"
        with httpx.Client(timeout=600) as client:
            _fetch_all(client, url)  # warm: first-request allocations are not a rise
            sizes: list[int] = []
            with PeakRss(server.pid) as memory:
                started = time.perf_counter()
                workers = [
                    threading.Thread(target=lambda: sizes.append(_fetch_all(client, url)))
                    for _ in range(concurrent)
                ]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                requests_s = time.perf_counter() - started
        if len(sizes) != concurrent or len(set(sizes)) != 1:
            raise RuntimeError(f"the concurrent answers differ in size: {sizes}")
        count = server.client.job(job_id).results_page(limit=1).frames_analysed
        if count != frames:
            raise RuntimeError(f"the job analysed {count} frames, not {frames}")
        return LongResults(
            frames=frames,
            job_s=job_s,
            results_bytes=sizes[0],
            requests_s=requests_s,
            api_baseline_mib=memory.before_kib / 1024,
            api_rise_mib=(memory.peak_kib - memory.before_kib) / 1024,
            short_frames=short_frames,
            child_peak_short_mib=short_peak,
            child_peak_long_mib=long_peak,
        )
