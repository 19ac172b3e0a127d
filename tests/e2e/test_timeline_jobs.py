"""The timeline of real jobs on a real server: object tracks that hold at 1, 2 and 10
analysed frames a second, readings that are no text left out, and shots found on every
frame (cuts, fades, dissolves; no cut for a pan, a zoom, flashes or a passing object)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import webvtt

from forgesyte.client import Client, Job
from forgesyte.video.shots import Shot
from tests.results.tracking_scenes import (
    colour_crossing_scene,
    timeline_track_figures,
    write_colour_video,
)
from tests.support.server import TEST_POLL, ServerProcess
from tests.video.shot_videos import CUTS, NO_CUTS, TRANSITIONS, CutScores, score_cuts

RATES = (1.0, 2.0, 10.0)  # analysed frames a second


def finished(jobs: list[Job]) -> list[Job]:
    """Wait for every job; fail unless each completed."""
    for job in jobs:
        status = job.wait(timeout=120, poll=TEST_POLL)
        assert status.status == "completed", status
    return jobs


def test_one_track_per_object_at_1_2_and_10_analysed_frames_a_second(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    """Three walkers crossing at 2.3-4.5 box widths a second, each pair once: at every
    rate one track per object, over at least 90 % of the analysed frames that show it,
    and no identity switch (a greedy IoU tracker opens a track on every analysed frame
    at 1 fps: bench row t)."""
    scene = colour_crossing_scene()
    video = write_colour_video(scene, tmp_path / "crossing.mp4")
    with Client(live_server.url) as client:
        jobs = [
            client.submit(video, pipeline_id="testkit_colour_boxes", sample_fps=rate)
            for rate in RATES
        ]
        for rate, job in zip(RATES, finished(jobs), strict=True):
            analysed = [(entry.frame_index, entry.timestamp_s) for entry in job.results()]
            tracks = job.timeline().objects
            spans = [(track.first_frame, track.last_frame) for track in tracks]
            figures = timeline_track_figures(scene, analysed, spans)
            assert figures.tracks == len(scene.movers), (rate, tracks)
            assert min(figures.coverage.values()) >= 0.9, (rate, figures)
            assert figures.identity_switches == 0, (rate, figures)
            assert {track.class_name for track in tracks} == {"person"}


def write_bar_video(path: Path) -> Path:
    """2 s of a line of text, then 2 s of a dark frame with a plain red bar across its
    foot, 640x360 at 10 fps: OCR reads "_" on the bar, in a box of nearly the frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 360))
    try:
        for index in range(40):
            if index < 20:
                frame = np.full((360, 640, 3), 255, np.uint8)
                cv2.putText(
                    frame, "GATE 7 OPEN", (40, 200), cv2.FONT_HERSHEY_SIMPLEX, 2.4, (0, 0, 0), 6
                )
            else:
                frame = np.full((360, 640, 3), 12, np.uint8)
                cv2.rectangle(frame, (0, 320), (640, 340), (0, 0, 255), -1)
            writer.write(frame)
    finally:
        writer.release()
    return path


def test_what_ocr_reads_on_a_coloured_bar_stays_out_of_the_timeline(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    """The per-frame results keep every reading; the timeline and its WebVTT only the
    line of text (the search index reads the timeline)."""
    video = write_bar_video(tmp_path / "bar.mp4")
    with Client(live_server.url) as client:
        (job,) = finished([client.submit(video, pipeline_id="ocr_only", sample_fps=2)])
        read = {line["text"] for entry in job.results() for line in entry.result["ocr"]}
        assert read == {"GATE 7 OPEN", "_"}, read
        timeline = job.timeline()
        assert [(s.text, s.start_s, s.end_s) for s in timeline.text] == [("GATE 7 OPEN", 0.0, 1.5)]
        cues = webvtt.from_buffer(io.StringIO(job.vtt())).captions
        assert [(cue.start, cue.end, cue.text) for cue in cues] == [
            ("00:00:00.000", "00:00:02.000", "GATE 7 OPEN")
        ]


def seconds(stamp: str) -> float:
    """A WebVTT timestamp (HH:MM:SS.mmm) in seconds."""
    hours, minutes, rest = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


EDITS = {"cuts": CUTS, "transitions": TRANSITIONS, "hard cases": NO_CUTS}


@pytest.fixture(scope="module")
def edit_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shot tests' made edits as MP4s: hard cuts; fades and dissolves; a fast pan, a
    zoom, flashes and a passing disc with only two joins."""
    folder = tmp_path_factory.mktemp("edits")
    return {name: edit.write(folder / f"{name}.mp4") for name, edit in EDITS.items()}


def test_shots_of_jobs_that_ask_for_them_cover_the_video_and_give_chapters(
    live_server: ServerProcess, edit_videos: dict[str, Path]
) -> None:
    """At sample_fps=1 (a frame a second analysed), every frame is looked at for cuts:
    each join is found to the frame (inside a transition's frames), nothing else is."""
    with Client(live_server.url) as client:
        jobs = {
            name: client.submit(path, pipeline_id="testkit_noop", sample_fps=1, detect_shots=True)
            for name, path in edit_videos.items()
        }
        without = client.submit(edit_videos["cuts"], pipeline_id="testkit_noop", sample_fps=1)
        finished([*jobs.values(), without])
        for name, job in jobs.items():
            edit, frame_count = EDITS[name], sum(1 for _ in EDITS[name].frames())
            shots = job.timeline().shots
            joins = len(edit.joins)
            found = score_cuts(
                [Shot(s.index, s.start_s, s.end_s, s.first_frame, s.last_frame) for s in shots],
                edit.cuts(),
            )
            assert found == CutScores(found=joins, true=joins, missed=0), (name, shots)
            assert [shot.index for shot in shots] == list(range(joins + 1))
            assert (shots[0].first_frame, shots[0].start_s) == (0, 0.0)
            assert shots[-1].last_frame == frame_count - 1
            for before, after in itertools.pairwise(shots):
                assert after.first_frame == before.last_frame + 1
            assert job.results_page().frames_analysed < frame_count / 20  # sampled
            cues = webvtt.from_buffer(io.StringIO(job.vtt("chapters"))).captions
            assert [cue.text for cue in cues] == [f"Shot {n + 1}" for n in range(joins + 1)]
            assert [seconds(cue.start) for cue in cues] == [
                pytest.approx(shot.start_s, abs=0.001) for shot in shots
            ]
            for before, after in itertools.pairwise(cues):
                assert before.end == after.start
        assert without.timeline().shots == ()
