"""WebVTT output (subtitles and chapters), checked with a WebVTT parser (webvtt-py)."""

from __future__ import annotations

import io

import webvtt

from forgesyte.results.vtt import chapters_vtt, subtitles_vtt, vtt_time


def segment(text: str, start_s: float, end_s: float) -> dict[str, object]:
    return {"text": text, "start_s": start_s, "end_s": end_s}


def test_one_cue_per_segment_parsed_back() -> None:
    segments = [
        segment("GATE 7 OPEN", 2.0, 5.4),
        segment("a < b & c", 3661.5, 3661.5),
    ]
    text = subtitles_vtt(segments, frame_interval_s=0.1)
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert [(c.start, c.end, c.text) for c in captions] == [
        ("00:00:02.000", "00:00:05.500", "GATE 7 OPEN"),
        ("01:01:01.500", "01:01:01.600", "a &lt; b &amp; c"),
    ]


def test_empty_timeline_is_a_valid_file() -> None:
    assert webvtt.from_buffer(io.StringIO(subtitles_vtt([], 0.1))).captions == []


def test_times() -> None:
    assert vtt_time(0.0) == "00:00:00.000" and vtt_time(59.9996) == "00:01:00.000"


def test_one_chapter_per_shot_without_gaps() -> None:
    shots = [
        {"index": 0, "start_s": 0.0, "end_s": 1.96, "first_frame": 0, "last_frame": 49},
        {"index": 1, "start_s": 2.0, "end_s": 2.0, "first_frame": 50, "last_frame": 50},
        {"index": 2, "start_s": 2.04, "end_s": 3661.0, "first_frame": 51, "last_frame": 91525},
    ]
    captions = webvtt.from_buffer(io.StringIO(chapters_vtt(shots, frame_s=0.04))).captions
    assert [(c.start, c.end, c.text) for c in captions] == [
        ("00:00:00.000", "00:00:02.000", "Shot 1"),
        ("00:00:02.000", "00:00:02.040", "Shot 2"),
        ("00:00:02.040", "01:01:01.040", "Shot 3"),
    ]
    assert webvtt.from_buffer(io.StringIO(chapters_vtt([], 0.04))).captions == []
