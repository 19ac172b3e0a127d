"""What the outage test (tests/scaleout/test_outages.py) and the outage bench
(bench/bench_outages.py) share: a slow pipeline whose results differ frame by frame, a
prober that asks the API what clients ask and keeps every answer, and a wait for jobs
that rides out refused answers."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import TESTKIT_PIPELINES

# grey (a number per frame: results differ from frame to frame) and sleep (0.2 s a frame:
# jobs take long enough to be under way when the faults come)
SLOW_GREY = {
    "id": "testkit_slow_grey",
    "description": "Test pipeline: a grey level per frame, slowly.",
    "entry_nodes": ["grey", "sleep"],
    "output_nodes": ["grey", "sleep"],
    "nodes": [
        {"id": "grey", "plugin_type": "testkit", "tool_type": "grey",
         "input_types": ["image"], "output_types": ["number"]},
        {"id": "sleep", "plugin_type": "testkit", "tool_type": "sleep",
         "input_types": ["image"], "output_types": ["nothing"]},
    ],
    "edges": [],
}  # fmt: skip
UNFINISHED = ("pending", "running")


def write_pipelines(folder: Path) -> Path:
    """A pipelines folder: the testkit's pipelines and SLOW_GREY."""
    folder.mkdir(parents=True, exist_ok=True)
    for testkit in TESTKIT_PIPELINES.glob("*.json"):
        (folder / testkit.name).write_bytes(testkit.read_bytes())
    (folder / f"{SLOW_GREY['id']}.json").write_text(json.dumps(SLOW_GREY))
    return folder


@dataclass(frozen=True)
class Answer:
    """One API answer the prober got."""

    what: str
    status: int  # 0: no answer at all (the connection failed)
    elapsed_s: float
    at: float  # time.monotonic() when it was asked
    retry_after: str | None
    body: Any


@dataclass
class Prober:
    """Asks the API, over and over, what clients ask: job states, the job list, /healthz,
    a completed job's results, and, while `submitting` is set, a submit."""

    url: str
    job_ids: list[str]
    completed_id: str
    video: bytes
    answers: list[Answer] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    submitting: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            turn = 0
            while not self.stop.is_set():
                turn += 1
                job_id = self.job_ids[turn % len(self.job_ids)]
                self._ask(client, "status", "GET", f"/v1/video/status/{job_id}")
                self._ask(client, "list", "GET", "/v1/video/jobs", params={"limit": "5"})
                self._ask(client, "healthz", "GET", "/healthz")
                results = f"/v1/video/results/{self.completed_id}"
                self._ask(client, "results", "GET", results, params={"limit": "2"})
                if self.submitting.is_set() and turn % 3 == 0:
                    file = {"file": ("short.mp4", self.video, "video/mp4")}
                    params = {"pipeline_id": str(SLOW_GREY["id"])}
                    answer = self._ask(client, "submit", "POST", "/v1/video/submit",
                                       files=file, params=params)  # fmt: skip
                    if answer.status == 200:
                        self.submitted.append(answer.body["job_id"])
                self.stop.wait(0.2)

    def _ask(self, client: httpx.Client, what: str, method: str, path: str, **kw: Any) -> Answer:
        at = time.monotonic()
        try:
            response = client.request(method, path, **kw)
            status, body = response.status_code, _json(response)
            retry_after = response.headers.get("retry-after")
        except httpx.HTTPError as exc:
            status, body, retry_after = 0, repr(exc), None
        answer = Answer(what, status, time.monotonic() - at, at, retry_after, body)
        self.answers.append(answer)
        return answer

    def during(self, window: tuple[float, float], what: str) -> list[Answer]:
        """Its answers to `what` asked well inside the window (0.5 s in from each end)."""
        start, end = window
        return [a for a in self.answers if a.what == what and start + 0.5 <= a.at <= end - 0.5]


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def wait_all(url: str, job_ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Poll until every job ended (503s and failed connections are waited through)."""
    ended: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=15) as client:
        while len(ended) < len(job_ids):
            assert time.monotonic() < deadline, f"not ended: {set(job_ids) - set(ended)}"
            for job_id in set(job_ids) - set(ended):
                try:
                    answer = client.get(f"/v1/video/status/{job_id}")
                except httpx.HTTPError:
                    continue
                if answer.status_code == 200 and answer.json()["status"] not in UNFINISHED:
                    ended[job_id] = answer.json()
            time.sleep(0.3)
    return ended
