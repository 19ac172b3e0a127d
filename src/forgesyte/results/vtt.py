"""WebVTT: one cue per text segment of a timeline."""

from __future__ import annotations

from typing import Any

MIN_CUE_S = 0.001  # a cue must end after it starts


def vtt_time(seconds: float) -> str:
    """A WebVTT timestamp, ``HH:MM:SS.mmm``."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _cue_text(text: str) -> str:
    """Cue payload: one line, with the characters WebVTT reserves escaped."""
    flat = " ".join(text.split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_vtt(segments: list[dict[str, Any]], frame_interval_s: float) -> str:
    """A WebVTT file with one cue per text segment, in the segments' order.

    A cue runs from the segment's first analysed frame to the end of its last one
    (end_s + frame_interval_s), so a segment seen in one frame still shows.
    """
    parts = ["WEBVTT", ""]
    for number, segment in enumerate(segments, start=1):
        start_s = float(segment["start_s"])
        end_s = max(float(segment["end_s"]) + frame_interval_s, start_s + MIN_CUE_S)
        parts += [str(number), f"{vtt_time(start_s)} --> {vtt_time(end_s)}"]
        parts += [_cue_text(str(segment["text"])), ""]
    return "\n".join(parts) + "\n"
