"""WebVTT output, checked with a WebVTT parser (webvtt-py)."""

from __future__ import annotations

import io

import webvtt

from forgesyte.results.vtt import vtt_time, write_vtt


def segment(text: str, start_s: float, end_s: float) -> dict[str, object]:
    return {"text": text, "start_s": start_s, "end_s": end_s}


def test_one_cue_per_segment_parsed_back() -> None:
    segments = [
        segment("GATE 7 OPEN", 2.0, 5.4),
        segment("a < b & c", 3661.5, 3661.5),
    ]
    text = write_vtt(segments, frame_interval_s=0.1)
    captions = webvtt.from_buffer(io.StringIO(text)).captions
    assert [(c.start, c.end, c.text) for c in captions] == [
        ("00:00:02.000", "00:00:05.500", "GATE 7 OPEN"),
        ("01:01:01.500", "01:01:01.600", "a &lt; b &amp; c"),
    ]


def test_empty_timeline_is_a_valid_file() -> None:
    assert webvtt.from_buffer(io.StringIO(write_vtt([], 0.1))).captions == []


def test_times() -> None:
    assert vtt_time(0.0) == "00:00:00.000" and vtt_time(59.9996) == "00:01:00.000"
