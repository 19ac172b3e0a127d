"""A job's media, made by its analysis child once the results are written (`MediaRequest`).

Three files in the scratch folder, for the worker to store with the results:

- ``tracks.jsonl``: per analysed frame, the track id of each of its detections (the
  timeline's tracker run again on the stored lines, so the ids are the timeline's), for the
  page to label boxes with the track they belong to;
- ``thumbnails.pack``: a thumbnail per text segment and object track (a crop around its best
  reading, from the frame it was read in) and per shot (its middle frame);
- ``playable.mp4``, only when the upload is not browser-playable H.264 (`video.playable`).

Runs inside the child's limits (the job timeout, the memory cap). A copy that cannot be
made (an undecodable frame the sampling skipped, no H.264 encoder) is not an error of the
job: MediaDone says nothing plays and why.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgesyte.plugins.values import CONFIDENCE_DIGITS
from forgesyte.results.encoding import FLOAT_DIGITS, encode_line
from forgesyte.results.media import ThumbnailCounts, ThumbnailPackWriter
from forgesyte.results.timeline import frame_observations
from forgesyte.results.tracking import FrameDetections, MotionTracker
from forgesyte.video.decoder import VideoDecodeError
from forgesyte.video.playable import NoH264Encoder, probe_codec, write_playable_copy
from forgesyte.workers.images import decode_frames, thumbnail
from forgesyte.workers.protocol import MediaDone, MediaRequest

TRACKS_FILE_NAME = "tracks.jsonl"
THUMBNAILS_FILE_NAME = "thumbnails.pack"
PLAYABLE_FILE_NAME = "playable.mp4"
MAX_THUMBNAILS_PER_KIND = 5000  # items past this many of a kind get no thumbnail

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wanted:
    """A thumbnail to make: the item's kind and place, its frame span and best reading."""

    kind: str
    index: int
    first_frame: int
    last_frame: int
    box: Any
    reading: tuple[float, ...] | None  # what identifies the best reading (None: a shot)


def reading_key(box: Any, confidence: float) -> tuple[float, ...] | None:
    """A stored reading's identity: its box's numbers and its confidence, as stored."""
    flat: list[float] = []
    for value in box if isinstance(box, list | tuple) else ():
        flat.extend(value if isinstance(value, list | tuple) else [value])
    if not flat:
        return None
    # rounded as stored, so a box read back compares equal
    numbers = tuple(round(float(v), FLOAT_DIGITS) for v in flat)
    return (*numbers, round(float(confidence), CONFIDENCE_DIGITS))


def wanted_thumbnails(timeline: dict[str, Any]) -> tuple[ThumbnailCounts, list[Wanted]]:
    """The pack's items (every segment, track and shot of the timeline) and the thumbnails
    to make of them (at most MAX_THUMBNAILS_PER_KIND a kind)."""
    text, objects = timeline.get("text", []), timeline.get("objects", [])
    shots = timeline.get("shots", [])  # present once the timeline carries shots
    counts = ThumbnailCounts(len(text), len(objects), len(shots))
    wanted: list[Wanted] = []
    for kind, items in (("text", text), ("object", objects)):
        for index, item in enumerate(items[:MAX_THUMBNAILS_PER_KIND]):
            key = reading_key(item["box"], item["confidence"])
            span = (int(item["first_frame"]), int(item["last_frame"]))
            wanted.append(Wanted(kind, index, *span, item["box"], key))
    for index, shot in enumerate(shots[:MAX_THUMBNAILS_PER_KIND]):
        middle = (int(shot["first_frame"]) + int(shot["last_frame"])) // 2
        wanted.append(Wanted("shot", index, middle, middle, None, None))
    return counts, wanted


def _stored_entries(results_path: Path) -> Iterator[dict[str, Any]]:
    with results_path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def write_frame_tracks(
    results_path: Path, tracks_path: Path, wanted: Iterable[Wanted]
) -> dict[tuple[str, int], int]:
    """Write each analysed frame's detections' track ids (one JSON line a frame); and find
    the frame of each wanted item's best reading: {(kind, index): frame_index}.

    The tracker is the timeline's (`MotionTracker`), fed the same stored lines in the same
    order, so its ids are those of the timeline's tracks (0: a low box that continued no
    track, drawn without one).
    """
    waiting: dict[tuple[str, tuple[float, ...]], list[Wanted]] = defaultdict(list)
    best: dict[tuple[str, int], int] = {}
    for item in wanted:
        if item.reading is None:
            best[(item.kind, item.index)] = item.first_frame
        else:
            waiting[(item.kind, item.reading)].append(item)
    tracker = MotionTracker()
    with tracks_path.open("wb") as out:
        for entry in _stored_entries(results_path):
            frame_index = int(entry["frame_index"])
            result = entry.get("result")
            lines, detections = frame_observations(result if isinstance(result, dict) else {})
            found = FrameDetections.of(
                detections.xyxy, detections.confidence, detections.class_names
            )
            track_ids = tracker.update(frame_index, float(entry["timestamp_s"]), found).tolist()
            out.write(encode_line({"frame_index": frame_index, "track_ids": track_ids}))
            readings = [("text", line.box, line.confidence) for line in lines] + [
                ("object", box, confidence)
                for box, confidence in zip(
                    detections.xyxy.tolist(), detections.confidence.tolist(), strict=True
                )
            ]
            for kind, box, confidence in readings:
                key = reading_key(box, confidence)
                for item in waiting.get((kind, key), []) if key is not None else []:
                    place = (item.kind, item.index)
                    if place not in best and item.first_frame <= frame_index <= item.last_frame:
                        best[place] = frame_index
    for items in waiting.values():  # never seen again (cannot happen with the same lines)
        for item in items:
            best.setdefault((item.kind, item.index), item.first_frame)
    return best


def write_thumbnails(
    video_path: Path,
    pack_path: Path,
    counts: ThumbnailCounts,
    wanted: list[Wanted],
    frames: dict[tuple[str, int], int],
    max_frame_pixels: int,
) -> None:
    """Decode each frame a thumbnail needs (once, in frame order) and write the pack."""
    by_frame: dict[int, list[Wanted]] = defaultdict(list)
    for item in wanted:
        by_frame[frames[(item.kind, item.index)]].append(item)
    with ThumbnailPackWriter(pack_path, counts) as pack:
        if by_frame:
            for frame_index, image in decode_frames(video_path, by_frame, max_frame_pixels):
                for item in by_frame[frame_index]:
                    pack.add(item.kind, item.index, thumbnail(image, item.box))
        pack.finish()


def make_job_media(request: MediaRequest, *, max_frame_pixels: int, threads: int) -> MediaDone:
    """Make a job's media in request.scratch_dir (see the module); what there is.

    Raises VideoDecodeError when the frames the thumbnails need cannot be decoded.
    """
    scratch = Path(request.scratch_dir)
    video = Path(request.video_path)
    timeline = json.loads(Path(request.timeline_path).read_bytes())
    counts, wanted = wanted_thumbnails(timeline)
    tracks_path = scratch / TRACKS_FILE_NAME
    frames = write_frame_tracks(Path(request.results_path), tracks_path, wanted)
    pack_path = scratch / THUMBNAILS_FILE_NAME
    write_thumbnails(video, pack_path, counts, wanted, frames, max_frame_pixels)
    tracks, thumbnails = str(tracks_path), str(pack_path)
    codec = probe_codec(video, max_frame_pixels)
    if codec.browser_playable:
        return MediaDone(tracks, thumbnails, counts.to_json(), codec.codec, playable=True)
    copy_path = scratch / PLAYABLE_FILE_NAME
    try:
        write_playable_copy(video, copy_path, max_frame_pixels=max_frame_pixels, threads=threads)
    except (VideoDecodeError, NoH264Encoder) as exc:
        copy_path.unlink(missing_ok=True)
        note = f"no playable copy of the {codec.codec} video could be made: {exc}"
        return MediaDone(
            tracks, thumbnails, counts.to_json(), codec.codec, playable=False, note=note
        )
    return MediaDone(
        tracks, thumbnails, counts.to_json(), codec.codec, playable=True, copy_path=str(copy_path)
    )
