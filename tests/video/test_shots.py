"""Shots: cuts and transitions found in made MP4s, and every frame decoded small and grey."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from forgesyte.video.decoder import FrameTooLargeError, VideoDecodeError
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService
from forgesyte.video.shots import SHOT_FRAME_WIDTH, Shot, ShotDetector, grey_frames
from tests.video.crafted import full_decode, write_h264_video
from tests.video.shot_videos import (
    CUTS,
    FPS,
    NO_CUTS,
    TRANSITIONS,
    CutScores,
    Edit,
    random_edit,
    score_cuts,
)


def shots_of(path: Path) -> list[Shot]:
    detector = ShotDetector(FPS)
    for frame in grey_frames(path):
        detector.add(frame.frame_index, frame.timestamp_s, frame.grey)
    return detector.finish()


def written(edit: Edit, folder: Path, name: str) -> Path:
    return edit.write(folder / f"{name}.mp4")


def test_hard_cuts_are_found_to_the_frame(tmp_path: Path) -> None:
    shots = shots_of(written(CUTS, tmp_path, "cuts"))
    starts = [earliest + 1 for earliest, _ in CUTS.cuts()]  # the new takes' first frames
    assert [shot.first_frame for shot in shots] == [0, *starts]


def test_fades_and_dissolves_give_one_cut_inside_each(tmp_path: Path) -> None:
    shots = shots_of(written(TRANSITIONS, tmp_path, "transitions"))
    assert score_cuts(shots, TRANSITIONS.cuts()) == CutScores(found=4, true=4, missed=0)


def test_a_pan_a_zoom_flashes_and_a_passing_object_are_no_cut(tmp_path: Path) -> None:
    """A fast pan, a zoom with a flash, a 4-frame flash and a disc crossing the frame:
    the two joins between the takes are the only cuts."""
    shots = shots_of(written(NO_CUTS, tmp_path, "hard"))
    assert score_cuts(shots, NO_CUTS.cuts()) == CutScores(found=2, true=2, missed=0)


def test_random_edits_have_high_precision_and_recall(tmp_path: Path) -> None:
    """Six seeded edits of eight takes each (random photos, motions, flashes, crossings,
    joins): one-frame tolerance outside the transitions (bench row v runs more)."""
    total = CutScores(0, 0, 0)
    for seed in range(6):
        edit = random_edit(seed)
        total = total + score_cuts(shots_of(written(edit, tmp_path, f"edit{seed}")), edit.cuts())
    assert total.precision >= 0.95, total
    assert total.recall >= 0.9, total


def test_shots_cover_the_video_end_to_end_in_order(tmp_path: Path) -> None:
    path = written(TRANSITIONS, tmp_path, "transitions")
    frames = list(grey_frames(path))
    shots = shots_of(path)
    assert [shot.index for shot in shots] == list(range(len(shots)))
    assert shots[0].first_frame == 0 and shots[0].start_s == 0.0
    assert shots[-1].last_frame == len(frames) - 1
    assert shots[-1].end_s == frames[-1].timestamp_s
    for before, after in itertools.pairwise(shots):
        assert after.first_frame == before.last_frame + 1
        assert after.start_s == frames[after.first_frame].timestamp_s
        assert before.end_s == frames[before.last_frame].timestamp_s
    assert shots[1].to_json() == {
        "index": 1,
        "start_s": shots[1].start_s,
        "end_s": shots[1].end_s,
        "first_frame": shots[1].first_frame,
        "last_frame": shots[1].last_frame,
    }


def test_a_video_of_one_shot_is_one_shot_and_no_frames_no_shot() -> None:
    detector = ShotDetector(FPS)
    picture = np.tile(np.arange(0, 160, dtype=np.uint8), (90, 1))
    for index in range(40):
        detector.add(index, index / FPS, np.roll(picture, index, axis=1))
    assert detector.finish() == [Shot(0, 0.0, round(39 / FPS, 6), 0, 39)]
    assert ShotDetector(FPS).finish() == []


def test_bad_pictures_are_refused() -> None:
    with pytest.raises(ValueError, match="fps"):
        ShotDetector(0)
    detector = ShotDetector(FPS)
    detector.add(0, 0.0, np.zeros((90, 160), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        detector.add(1, 0.1, np.zeros((80, 160), np.uint8))
    with pytest.raises(ValueError, match="grey picture"):
        detector.add(1, 0.1, np.zeros((90, 160, 3), np.uint8))


def test_grey_frames_are_every_frame_with_the_services_indices_and_times(
    tmp_path: Path,
) -> None:
    """An H.264 file with B-frames: every frame, in order, with the frame indices and
    timestamps the video service gives, and the picture of a full decode made small."""
    path = write_h264_video(tmp_path / "b_frames.mp4", 40, size_wh=(320, 192), b_frames=3)
    frames = list(grey_frames(path))
    service = VideoFilePipelineService(_Nothing()).run(path, SamplingOptions())
    assert [(f.frame_index, f.timestamp_s) for f in frames] == [
        (r.frame_index, r.timestamp_s) for r in service.frames
    ]
    assert frames[0].grey.shape == (96, SHOT_FRAME_WIDTH)
    for frame, (_, _, image) in zip(frames, full_decode(path), strict=True):
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (SHOT_FRAME_WIDTH, 96), interpolation=cv2.INTER_AREA)
        assert np.abs(small.astype(int) - frame.grey).mean() < 3


def test_grey_frames_keep_the_decoders_limits(tmp_path: Path) -> None:
    path = write_h264_video(tmp_path / "big.mp4", 3, size_wh=(320, 192))
    with pytest.raises(FrameTooLargeError):
        list(grey_frames(path, max_frame_pixels=320 * 191))
    playlist = tmp_path / "list.mp4"
    playlist.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"#EXTM3U\n" * 4)
    with pytest.raises(VideoDecodeError):
        list(grey_frames(playlist))


class _Nothing:
    def run(self, frame: np.ndarray) -> dict[str, object]:
        return {}
