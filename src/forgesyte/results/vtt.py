"""WebVTT: subtitles (one cue per text segment of a timeline) and chapters (one per shot)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def write_cues(cues: Iterable[tuple[float, float, str]]) -> str:
    """A WebVTT file of (start_s, end_s, text) cues, numbered from 1 in the given order; a
    cue lasts at least MIN_CUE_S."""
    parts = ["WEBVTT", ""]
    for number, (start_s, end_s, text) in enumerate(cues, start=1):
        end_s = max(end_s, start_s + MIN_CUE_S)
        parts += [str(number), f"{vtt_time(start_s)} --> {vtt_time(end_s)}", _cue_text(text), ""]
    return "\n".join(parts) + "\n"


def subtitles_vtt(segments: Sequence[Mapping[str, Any]], frame_interval_s: float) -> str:
    """One cue per text segment, in the segments' order.

    A cue runs from the segment's first analysed frame to the end of its last one
    (end_s + frame_interval_s, the sampling interval), so a segment seen in one frame
    still shows.
    """
    return write_cues(
        (float(s["start_s"]), float(s["end_s"]) + frame_interval_s, str(s["text"]))
        for s in segments
    )


def chapters_vtt(shots: Sequence[Mapping[str, Any]], frame_s: float) -> str:
    """One chapter cue per shot, titled "Shot <n>" (n from 1), in order.

    A chapter runs from its shot's first frame to the next shot's, the last one to the
    end of its last frame (end_s + frame_s, one frame's duration): chapters leave no gap.
    """
    starts = [float(shot["start_s"]) for shot in shots]
    ends = [*starts[1:], float(shots[-1]["end_s"]) + frame_s] if shots else []
    return write_cues(
        (start_s, end_s, f"Shot {int(shot['index']) + 1}")
        for shot, start_s, end_s in zip(shots, starts, ends, strict=True)
    )
