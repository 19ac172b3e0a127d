"""A job's results and timeline, written by the analysis child and stored by the worker.

Nothing is readable before the job completes: a crash, a storage failure or a lost lease
leaves no results, no timeline and no half-written object behind. The segments found on the
suite's own videos (real OCR) have the known count and boundaries.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from forgesyte.jobs.models import JobStatus
from forgesyte.jobs.store import JobStore
from forgesyte.search.values import IndexEntries
from forgesyte.storage.base import Storage, StorageError, StorageWriter
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.protocol import AnalysisFailed, AnalysisRequest, FailureReason
from tests.conftest import HALF_TIME_TEXT, SCORE_TEXT
from tests.support.storages import StorageBackend
from tests.support.videos import write_counter_video, write_text_video
from tests.workers.conftest import TESTKIT_PIPELINES, Enqueue, MakeWorker

FPS = 10.0


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_counter_video(tmp_path_factory.mktemp("v") / "counter.mp4", 40, fps=20.0)


def result_keys(backend: StorageBackend) -> list[str]:
    """Everything in storage but the uploaded videos."""
    return [key for key in backend.contents() if not key.startswith("videos/")]


def test_a_completed_job_stores_results_and_timeline_byte_identical_across_runs(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    counter_video: Path,
) -> None:
    jobs = [enqueue(counter_video, "testkit_grey", frame_stride=3) for _ in range(2)]
    assert make_worker().run(burst=True) == 2
    for job_id in jobs:
        record = store.get(job_id)
        assert record is not None and record.status is JobStatus.COMPLETED
        assert record.result_summary == {
            "frames_analysed": 14,
            "video": {"frame_count": 40, "fps": 20.0, "width": 64, "height": 48},
            # the media its child made: an mp4v upload gets a playable copy
            "playback": {"codec": "mpeg4", "copy": True},
            "thumbnails": {"text": 0, "object": 0, "shot": 0},
        }
    assert result_keys(storage_backend) == sorted(
        f"{folder}/{job_id}.{suffix}"
        for job_id in jobs
        for folder, suffix in (
            ("results", "jsonl"),
            ("timelines", "json"),
            ("playable", "mp4"),
            ("thumbnails", "pack"),
            ("tracks", "jsonl"),
        )
    )
    first, second = (storage_backend.read(f"results/{job_id}.jsonl") for job_id in jobs)
    assert first == second
    tracks = [storage_backend.read(f"tracks/{job_id}.jsonl") for job_id in jobs]
    assert tracks[0] == tracks[1] and len(tracks[0].splitlines()) == 14
    assert [json.loads(line)["frame_index"] for line in first.splitlines()] == list(range(0, 40, 3))
    timeline = json.loads(storage_backend.read(f"timelines/{jobs[0]}.json"))
    assert timeline == {"objects": [], "shots": [], "text": []}


@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_a_child_killed_midway_leaves_nothing_readable(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    counter_video: Path,
) -> None:
    # testkit_sleep writes a few frames, then the timeout kills the child mid-video
    job_id = enqueue(counter_video, "testkit_sleep")
    assert make_worker(timeout_s=1.0).run(burst=True) == 1
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert result_keys(storage_backend) == []


class _FailingCommits:
    """A storage whose writers for one folder fail when committed (a full disk, a lost bucket)."""

    def __init__(self, storage: Storage, folder: str) -> None:
        self._storage, self._folder = storage, folder

    def open_writer(self, key: str) -> StorageWriter:
        writer = self._storage.open_writer(key)
        if not key.startswith(self._folder):
            return writer

        class Failing:
            def write(self, chunk: bytes) -> None:
                writer.write(chunk)

            def commit(self) -> None:
                writer.abort()
                raise StorageError("cannot write to storage: no space left")

            def abort(self) -> None:
                writer.abort()

        return Failing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


def test_a_storage_failure_while_storing_fails_the_job_and_leaves_nothing(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    counter_video: Path,
) -> None:
    job_id = enqueue(counter_video, "testkit_grey", max_frames=3)
    worker = make_worker()
    worker.runner.storage = _FailingCommits(storage_backend.storage, "timelines/")  # type: ignore[assignment]
    assert worker.run(burst=True) == 1
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert (
        record.error_message
        == "the results could not be stored: cannot write to storage: no space left"
    )
    assert result_keys(storage_backend) == []


@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_a_job_taken_away_before_it_completes_leaves_nothing_readable(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    counter_video: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = enqueue(counter_video, "testkit_grey", max_frames=3)
    worker = make_worker()
    complete = store.complete

    def taken_first(
        job: uuid.UUID,
        worker_id: str,
        key: str,
        summary: dict[str, Any],
        index: IndexEntries | None = None,
    ) -> bool:
        # an operator (or a lease sweep) takes the job between the upload and completion
        assert store.fail(job, worker_id, "taken away")
        return complete(job, worker_id, key, summary, index)

    monkeypatch.setattr(store, "complete", taken_first)
    assert worker.run(burst=True) == 0
    record = store.get(job_id)
    assert record is not None and record.error_message == "taken away"
    assert result_keys(storage_backend) == []


SEGMENT_VIDEOS = {
    # name: (the text on each frame, the segments (text, first frame, last frame))
    "score": (
        [SCORE_TEXT] * 10 + [HALF_TIME_TEXT] * 10,
        [(SCORE_TEXT, 0, 9), (HALF_TIME_TEXT, 10, 19)],
    ),
    "gate": (
        ["GATE 7 OPEN"] * 6 + [""] * 6 + ["GATE 7 OPEN"] * 4 + ["EXIT"] * 4,
        [("GATE 7 OPEN", 0, 5), ("GATE 7 OPEN", 12, 15), ("EXIT", 16, 19)],
    ),
}


# real OCR, ~0.7 s a frame: one database, one storage, every other frame of two 2 s videos
@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
@pytest.mark.parametrize("store", ["duckdb"], indirect=True)
def test_text_segments_on_the_suites_videos(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    tmp_path: Path,
) -> None:
    stride = 2
    interval_s = stride / FPS
    jobs = {
        name: enqueue(
            write_text_video(tmp_path / f"{name}.mp4", texts, fps=FPS),
            "ocr_only",
            frame_stride=stride,
        )
        for name, (texts, _) in SEGMENT_VIDEOS.items()
    }
    assert make_worker(preload=("ocr_only",)).run(burst=True) == len(jobs)
    for name, job_id in jobs.items():
        expected = SEGMENT_VIDEOS[name][1]
        timeline = json.loads(storage_backend.read(f"timelines/{job_id}.json"))
        found = timeline["text"]
        assert len(found) == len(expected), (name, found)
        expected_sorted = sorted(expected, key=lambda s: (s[1], s[0]))
        for segment, (text, first, last) in zip(found, expected_sorted, strict=True):
            assert segment["text"].casefold() == text.casefold()
            assert abs(segment["start_s"] - first / FPS) <= interval_s
            assert abs(segment["end_s"] - last / FPS) <= interval_s
            assert (
                segment["frames"] == (segment["last_frame"] - segment["first_frame"]) // stride + 1
            )
            assert 0.5 < segment["confidence"] <= 1.0 and len(segment["box"]) == 4


def test_an_unwritable_scratch_folder_fails_clearly_without_naming_it(
    counter_video: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder"
    executor = AnalysisExecutor(pipelines_dir=str(TESTKIT_PIPELINES), preload=(), timeout_s=60)
    try:
        outcome = executor.run(
            AnalysisRequest("testkit_grey", str(counter_video), {}, str(missing)),
            on_progress=lambda analysed, planned: None,
            on_tick=lambda: True,
        )
    finally:
        executor.stop()
    assert outcome == AnalysisFailed(
        FailureReason.INTERNAL,
        "the results could not be written locally: No such file or directory",
    )
