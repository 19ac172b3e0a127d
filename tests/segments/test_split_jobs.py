"""Split jobs with real analysis children: byte-identical to an unsplit run, shared by
workers, a lost segment retried alone, a cancel that stops every segment."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.jobs.models import JobStatus, SegmentStatus
from forgesyte.jobs.segments import SegmentSpan
from forgesyte.jobs.store import JobStore, NewJob
from forgesyte.storage.base import (
    Storage,
    results_key,
    segment_results_key,
    timeline_key,
    video_key,
)
from forgesyte.video.segments import plan_segments
from forgesyte.video.service import SamplingOptions
from forgesyte.workers.shared_cores import SharedCores
from forgesyte.workers.worker import Worker
from tests.segments.videos import write_keyframed_frames, write_keyframed_video
from tests.support.storages import StorageBackend, StorageWrapper
from tests.support.videos import write_text_video
from tests.video.shot_videos import CUTS
from tests.workers.conftest import Enqueue, MakeWorker, worker_config

SPLIT = 12  # frames per segment in these tests (95 frames: several segments)
DEADLINE_S = 60.0


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Wait until condition() holds, failing with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_completed(store: JobStore, job_id: uuid.UUID) -> None:
    """Wait until the job is completed (failing after DEADLINE_S)."""
    wait_for(
        lambda: (r := store.get(job_id)) is not None and r.status is JobStatus.COMPLETED,
        f"job {job_id} to complete",
    )


def outputs(backend: StorageBackend, job_id: uuid.UUID) -> tuple[bytes, bytes]:
    """A completed job's results and timeline bytes."""
    return backend.read(results_key(job_id)), backend.read(timeline_key(job_id))


@contextmanager
def running(workers: list[Worker]) -> Iterator[threading.Event]:
    """Run the workers on threads until the block ends (their shared stop event is set)."""
    stop = workers[0].runner.stop_event
    threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "a worker did not stop"


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="every-frame"),
        pytest.param({"frame_stride": 4}, id="stride-4"),
        pytest.param({"sample_fps": 7.0, "max_frames": 20}, id="sample-fps-capped"),
    ],
)
def test_a_split_job_is_byte_identical_to_an_unsplit_run(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    keyframed_video: Path,
    options: dict[str, object],
) -> None:
    unsplit = enqueue(keyframed_video, "testkit_grey", **options)
    assert make_worker(config=worker_config(segment_frames=0)).run(burst=True) == 1
    split = enqueue(keyframed_video, "testkit_grey", **options)
    assert make_worker(config=worker_config(segment_frames=4)).run(burst=True) == 1

    segments = store.segments(split)
    assert len(segments) > 1 and all(s.status is SegmentStatus.DONE for s in segments)
    assert store.segments(unsplit) == []
    assert outputs(storage_backend, split) == outputs(storage_backend, unsplit)
    results, _ = outputs(storage_backend, split)
    assert len(results.splitlines()) == sum(s.frames for s in segments)
    record = store.get(split)
    assert record is not None and record.status is JobStatus.COMPLETED
    assert record.progress == 100.0
    unsplit_record = store.get(unsplit)
    assert unsplit_record is not None and record.result_summary == unsplit_record.result_summary
    for segment in segments:  # the segments' objects go once the job is complete
        assert not storage_backend.storage.exists(segment_results_key(split, segment.seq))


def test_two_workers_share_one_job(
    make_worker: MakeWorker, enqueue: Enqueue, store: JobStore, keyframed_video: Path
) -> None:
    job_id = enqueue(keyframed_video, "testkit_sleep", max_frames=48)  # 48 x 0.2 s
    config = worker_config(segment_frames=SPLIT, lease_seconds=10)
    stop = threading.Event()
    workers = [make_worker(config=config, stop_event=stop) for _ in range(2)]
    progress: list[float] = []
    with running(workers):

        def completed() -> bool:
            record = store.get(job_id)
            assert record is not None
            progress.append(record.progress)
            return record.status is JobStatus.COMPLETED

        wait_for(completed, "the split job to complete")
    owners = {segment.lease_owner for segment in store.segments(job_id)}
    assert owners == {worker.worker_id for worker in workers}, "both workers took segments"
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert any(0 < value < 100 for value in progress), "progress rose over the segments"


def test_a_short_job_is_cut_at_any_frame_for_the_free_workers(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    tmp_path: Path,
) -> None:
    video = write_keyframed_video(tmp_path / "one-keyframe.mp4", 40, gop=300)
    unsplit = enqueue(video, "testkit_grey")
    assert make_worker(config=worker_config(segment_frames=0)).run(burst=True) == 1
    # 40 frames: too few to cut at keyframes (1.5 x 30), and there is one keyframe
    cores = SharedCores(cores=2, workers=2)  # this worker's process has another, free
    split = enqueue(video, "testkit_grey")
    assert make_worker(cores=cores).run(burst=True) == 1
    assert [s.span for s in store.segments(split)] == [
        SegmentSpan(0, 20, 20),
        SegmentSpan(20, 40, 20),
    ]
    assert outputs(storage_backend, split) == outputs(storage_backend, unsplit)


def test_two_workers_share_a_short_job(
    make_worker: MakeWorker, enqueue: Enqueue, store: JobStore, tmp_path: Path
) -> None:
    video = write_keyframed_video(tmp_path / "short.mp4", 24, gop=300)
    job_id = enqueue(video, "testkit_sleep")  # 24 x 0.2 s
    cores = SharedCores(cores=2, workers=2)
    stop = threading.Event()
    workers = [make_worker(cores=cores, stop_event=stop) for _ in range(2)]
    with running(workers):
        wait_completed(store, job_id)
    segments = store.segments(job_id)
    assert [s.frames for s in segments] == [12, 12]
    assert {s.lease_owner for s in segments} == {w.worker_id for w in workers}


def test_ocr_shared_between_two_workers_gives_the_bytes_of_one_thread_alone(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    tmp_path: Path,
) -> None:
    texts = [f"PLATFORM {n} GATE {7 * n % 10}" for n in range(12)]
    video = write_text_video(tmp_path / "text.mp4", texts)
    one_thread = enqueue(video)
    alone = make_worker(
        cores=SharedCores(cores=1, workers=1), config=worker_config(segment_frames=0)
    )
    assert alone.run(burst=True) == 1
    # cut in two; each child on 1 or 2 threads as the other works or not
    job_id = enqueue(video)
    cores = SharedCores(cores=2, workers=2)
    stop = threading.Event()
    with running([make_worker(cores=cores, stop_event=stop) for _ in range(2)]):
        wait_completed(store, job_id)
    assert len(store.segments(job_id)) == 2
    assert outputs(storage_backend, job_id) == outputs(storage_backend, one_thread)
    assert b"PLATFORM 11" in outputs(storage_backend, job_id)[0]


def test_a_short_job_is_not_cut_while_other_work_waits(
    make_worker: MakeWorker, enqueue: Enqueue, store: JobStore, tmp_path: Path
) -> None:
    video = write_keyframed_video(tmp_path / "short.mp4", 24, gop=300)
    first, second = enqueue(video, "testkit_grey"), enqueue(video, "testkit_grey")
    worker = make_worker(cores=SharedCores(cores=2, workers=2))
    assert worker.run(burst=True) == 2
    # the free worker would take the second job: the first is not cut for it; the second,
    # claimed with nothing waiting, is
    assert store.segments(first) == [] and len(store.segments(second)) == 2


class CountingStorage(StorageWrapper):
    """A storage that counts its local copies and notes where each was."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self.copied: list[str] = []
        self.paths: list[Path] = []

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Count the copy, then hand it over."""
        self.copied.append(key)
        with self._storage.local_copy(key) as path:
            self.paths.append(path)
            yield path


@pytest.mark.parametrize("storage_backend", ["local", "s3"], indirect=True)
def test_a_worker_copies_a_split_jobs_video_once(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    keyframed_video: Path,
) -> None:
    job_id = enqueue(keyframed_video, "testkit_grey", max_frames=48)
    worker = make_worker(config=worker_config(segment_frames=SPLIT, lease_seconds=10))
    counting = CountingStorage(storage_backend.storage)
    worker.runner.storage = counting  # type: ignore[assignment]
    assert worker.run(burst=True) == 1
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.COMPLETED, record
    segments = store.segments(job_id)
    assert len(segments) >= 3 and {s.lease_owner for s in segments} == {worker.worker_id}
    # the coordinator's run and every segment used one copy (S3: one download, not four)
    assert counting.copied == [video_key(job_id)]
    if storage_backend.name == "s3":  # given back when the worker went idle
        assert not any(path.exists() for path in counting.paths)


class LosingStore(InMemoryJobStore):
    """A store where another worker claims segment 1 the moment a job is split, then dies."""

    def __init__(self) -> None:
        super().__init__()
        self.lost_lease_s = 1.0

    def add_segments(self, job_id: uuid.UUID, worker_id: str, spans: list[SegmentSpan]) -> bool:
        added = super().add_segments(job_id, worker_id, spans)
        if added:
            for _ in range(2):
                claimed = self.claim_segment("vanished-worker", self.lost_lease_s, job_id)
                assert claimed is not None
        return added


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_a_lost_segment_is_retried_alone(
    make_worker: MakeWorker,
    storage_backend: StorageBackend,
    keyframed_video: Path,
) -> None:
    losing = LosingStore()
    reference_id = uuid.uuid4()
    worker = make_worker(config=worker_config(segment_frames=SPLIT, lease_seconds=10))
    worker.runner.store = losing
    for job_id in (reference_id, uuid.uuid4()):
        storage_backend.storage.put_bytes(f"videos/{job_id}.mp4", keyframed_video.read_bytes())

    def submit(job_id: uuid.UUID) -> None:
        losing.create(NewJob(job_id, "testkit_grey", {"frame_stride": 1}, f"videos/{job_id}.mp4"))

    submit(reference_id)
    assert worker.run(burst=True) == 1
    segments = losing.segments(reference_id)
    assert [s.attempts for s in segments[:2]] == [2, 2], "the lost segments ran again"
    assert all(s.attempts == 1 for s in segments[2:]), "only the lost segments"
    assert all(s.status is SegmentStatus.DONE for s in segments)
    assert all(s.lease_owner == worker.worker_id for s in segments)
    record = losing.get(reference_id)
    assert record is not None and record.status is JobStatus.COMPLETED
    assert record.attempts == 1, "the job itself ran once"

    unsplit = make_worker(config=worker_config(segment_frames=0))
    unsplit.runner.store = losing
    unsplit_id = uuid.uuid4()
    storage_backend.storage.put_bytes(f"videos/{unsplit_id}.mp4", keyframed_video.read_bytes())
    submit(unsplit_id)
    assert unsplit.run(burst=True) == 1
    assert outputs(storage_backend, reference_id) == outputs(storage_backend, unsplit_id)


def test_a_cancel_stops_every_segment(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    keyframed_video: Path,
) -> None:
    job_id = enqueue(keyframed_video, "testkit_sleep")  # 95 x 0.2 s: 19 s of work
    config = worker_config(segment_frames=SPLIT, lease_seconds=10)
    stop = threading.Event()
    workers = [make_worker(config=config, stop_event=stop) for _ in range(2)]
    with running(workers):

        def one_done_two_running() -> bool:
            statuses = [s.status for s in store.segments(job_id)]
            return SegmentStatus.DONE in statuses and statuses.count(SegmentStatus.RUNNING) == 2

        wait_for(one_done_two_running, "a segment done and two running at once")
        done = [s for s in store.segments(job_id) if s.status is SegmentStatus.DONE]
        assert storage_backend.storage.exists(segment_results_key(job_id, done[0].seq))
        cancelled_at = time.monotonic()
        store.cancel(job_id)

        def none_running() -> bool:
            statuses = [s.status for s in store.segments(job_id)]
            return SegmentStatus.RUNNING not in statuses

        wait_for(none_running, "every segment to stop", timeout_s=5.0)
        assert time.monotonic() - cancelled_at < 5.0
        settled = store.segments(job_id)
        # the workers are free again: a new job completes while the cancelled one stays put
        after = enqueue(keyframed_video, "testkit_grey", max_frames=5)
        wait_for(
            lambda: (r := store.get(after)) is not None and r.status is JobStatus.COMPLETED,
            "the next job to complete",
        )
    assert store.segments(job_id) == settled, "no segment was claimed after the cancel"
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.CANCELLED
    assert not storage_backend.storage.exists(results_key(job_id))
    for segment in store.segments(job_id):  # what segments stored is gone with the cancel
        assert not storage_backend.storage.exists(segment_results_key(job_id, segment.seq))


@pytest.mark.parametrize("store", ["memory"], indirect=True)
def test_the_next_claimer_of_a_lost_coordinators_job_goes_on_with_its_segments(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    keyframed_video: Path,
) -> None:
    job_id = enqueue(keyframed_video, "testkit_grey")
    claimed = store.claim_next("lost-coordinator", 0.5)
    assert claimed is not None and claimed.job_id == job_id
    spans = [
        SegmentSpan(span.first_frame, span.end_frame, span.frames)
        for span in plan_segments(keyframed_video, SamplingOptions(), SPLIT)
    ]
    assert len(spans) > 2 and store.add_segments(job_id, "lost-coordinator", spans)
    wait_for(
        lambda: (r := store.get(job_id)) is not None
        and r.lease_expires_at is not None
        and r.lease_expires_at < datetime.now(UTC),
        "the lost coordinator's lease to run out",
    )
    # this worker would not split at all: it goes on with the segments it finds
    assert make_worker(config=worker_config(segment_frames=0)).run(burst=True) == 1
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.COMPLETED
    assert record.attempts == 2
    segments = store.segments(job_id)
    assert [s.span for s in segments] == spans, "not split again"
    assert all(s.status is SegmentStatus.DONE and s.attempts == 1 for s in segments)
    unsplit = enqueue(keyframed_video, "testkit_grey")
    assert make_worker(config=worker_config(segment_frames=0)).run(burst=True) == 1
    assert outputs(storage_backend, job_id) == outputs(storage_backend, unsplit)


def test_a_split_job_finds_the_shots_of_the_whole_video(
    make_worker: MakeWorker,
    enqueue: Enqueue,
    store: JobStore,
    storage_backend: StorageBackend,
    tmp_path: Path,
) -> None:
    """With detect_shots, the coordinator's child finds the shots on every frame of the
    whole video (across the segments' edges): the timeline is the unsplit run's."""
    video = write_keyframed_frames(tmp_path / "cuts.mp4", CUTS.frames(), gop=10)
    options = {"sample_fps": 10.0, "detect_shots": True}
    unsplit = enqueue(video, "testkit_grey", **options)
    assert make_worker(config=worker_config(segment_frames=0)).run(burst=True) == 1
    split = enqueue(video, "testkit_grey", **options)
    assert make_worker(config=worker_config(segment_frames=SPLIT)).run(burst=True) == 1
    assert len(store.segments(split)) > 2
    assert outputs(storage_backend, split) == outputs(storage_backend, unsplit)
    shots = json.loads(outputs(storage_backend, split)[1])["shots"]
    assert [shot["first_frame"] for shot in shots] == [0, 45, 90, 135, 180]  # CUTS' takes
    assert shots[-1]["last_frame"] == sum(1 for _ in CUTS.frames()) - 1


class StoppingStore(InMemoryJobStore):
    """A store that asks the workers to stop the moment a job is split."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def add_segments(self, job_id: uuid.UUID, worker_id: str, spans: list[SegmentSpan]) -> bool:
        added = super().add_segments(job_id, worker_id, spans)
        self.stop.set()
        return added


def test_a_coordinator_stopped_before_its_shot_pass_hands_the_job_back(
    make_worker: MakeWorker, storage_backend: StorageBackend, tmp_path: Path
) -> None:
    """A shutdown (no grace) as the job is split: the shot pass does not run, the job
    goes back to pending with its segments, and the next worker finds the shots."""
    stop = threading.Event()
    stopping = StoppingStore(stop)
    video = write_keyframed_frames(tmp_path / "cuts.mp4", CUTS.frames(), gop=10)
    job_id = uuid.uuid4()
    storage_backend.storage.put_bytes(video_key(job_id), video.read_bytes())
    options = {"sample_fps": 10.0, "detect_shots": True}
    stopping.create(NewJob(job_id, "testkit_grey", options, video_key(job_id)))
    config = worker_config(segment_frames=SPLIT, shutdown_grace_s=0)
    stopped = make_worker(config=config, stop_event=stop)
    stopped.runner.store = stopping
    stopped.run(burst=True)
    record = stopping.get(job_id)
    assert record is not None and record.status is JobStatus.PENDING, record
    segments = stopping.segments(job_id)
    assert len(segments) > 2 and {s.status for s in segments} == {SegmentStatus.PENDING}
    assert not storage_backend.storage.exists(timeline_key(job_id))

    again = make_worker(config=worker_config(segment_frames=SPLIT))
    again.runner.store = stopping
    assert again.run(burst=True) == 1
    record = stopping.get(job_id)
    assert record is not None and record.status is JobStatus.COMPLETED, record
    shots = json.loads(storage_backend.read(timeline_key(job_id)))["shots"]
    assert [shot["first_frame"] for shot in shots] == [0, 45, 90, 135, 180]
