"""The images the server serves, made by its child processes from decoded frames.

Preview frames (one analysed frame with the job's boxes and text drawn, at the video's
size) and thumbnails (a small crop around what was found). They run in an analysis child
or a preview child (`workers/preview_child.py`), never in the API's process: decoding goes
through the analysis' own MP4 decoder, so frame numbers mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.results.preview import FrameNotDecodable
from forgesyte.results.timeline import frame_observations
from forgesyte.video.decoder import (
    DEFAULT_MAX_FRAME_PIXELS,
    VideoDecodeError,
    decode_planned_frames,
    open_mp4,
    plan_decoding,
    read_packet_index,
    video_stream,
)

JPEG_QUALITY = 90
THUMBNAIL_JPEG_QUALITY = 80
TEXT_COLOUR = (0, 160, 255)  # BGR: orange for text lines
OBJECT_COLOUR = (60, 200, 60)  # BGR: green for detections
THUMBNAIL_WH = (192, 108)  # pixels: a thumbnail fits in this box, its aspect kept
THUMBNAIL_MARGIN = 0.5  # of the box's size added around it on each side, for context
THUMBNAIL_MIN_SIDE = 48  # pixels of the frame: a crop is at least this wide and high

Image = npt.NDArray[np.uint8]


def decode_frames(
    video_path: Path, frame_indices: Iterable[int], max_frame_pixels: int
) -> Iterator[tuple[int, Image]]:
    """(frame_index, BGR image) of each of these frames the video has, in frame order,
    numbered as the analysis numbered them.

    The same MP4-only decoder as the analysis: the packet index gives each frame's place,
    and decoding starts at its keyframe, so a frame costs at most one group of pictures,
    whatever its index. Raises VideoDecodeError.
    """
    with open_mp4(video_path, max_frame_pixels) as container:
        index = read_packet_index(container, video_stream(container))
    wanted = sorted({i for i in frame_indices if 0 <= i < index.frame_count})
    yield from decode_planned_frames(video_path, plan_decoding(index, wanted), max_frame_pixels)


def read_frame(video_path: Path, frame_index: int, max_frame_pixels: int) -> Image:
    """Decode frame `frame_index` of a video (FrameNotDecodable when it has none such)."""
    try:
        for _, image in decode_frames(video_path, [frame_index], max_frame_pixels):
            return image
    except VideoDecodeError as exc:
        raise FrameNotDecodable(str(exc)) from None
    raise FrameNotDecodable(f"the video has no frame {frame_index}")


def _label(image: Image, text: str, x: float, y: float, colour: tuple[int, int, int]) -> None:
    scale = max(0.4, image.shape[0] / 720)
    thickness = max(1, round(scale * 1.5))
    origin = (int(x), max(int(y) - 4, int(14 * scale)))
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness)


def draw_results(image: Image, result: dict[str, Any]) -> Image:
    """Draw a frame's detections (box, class, confidence) and text lines (box, text) on it,
    as the timeline reads them (`frame_observations`)."""
    lines, detections = frame_observations(result)
    thickness = max(1, image.shape[0] // 360)
    boxes, scores = detections.xyxy.tolist(), detections.confidence.tolist()
    for box, confidence, name in zip(boxes, scores, detections.class_names, strict=True):
        x1, y1, x2, y2 = (round(v) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), OBJECT_COLOUR, thickness)
        _label(image, f"{name} {confidence:.2f}", x1, y1, OBJECT_COLOUR)
    for line in lines:
        points = np.array(line.box, dtype=np.float64).reshape(-1, 2).round().astype(np.int32)
        if len(points) < 2:
            continue
        cv2.polylines(image, [points], True, TEXT_COLOUR, thickness)
        _label(image, line.text, points[:, 0].min(), points[:, 1].min(), TEXT_COLOUR)
    return image


def encode_jpeg(image: Image, quality: int = JPEG_QUALITY) -> bytes:
    """An image as JPEG bytes."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a BGR uint8 image
        raise FrameNotDecodable("the frame could not be encoded as JPEG")
    return bytes(encoded.tobytes())


def render_preview(
    video_path: Path, entry: dict[str, Any], max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
) -> bytes:
    """The JPEG of an analysed frame (at the video's size) with its results drawn."""
    image = read_frame(video_path, int(entry["frame_index"]), max_frame_pixels)
    result = entry.get("result")
    draw_results(image, result if isinstance(result, dict) else {})
    return encode_jpeg(image)


def box_bounds(box: Any) -> tuple[float, float, float, float] | None:
    """(x1, y1, x2, y2) of a stored box: an xyxy list, or a text line's corner points."""
    points = np.asarray(box, dtype=np.float64)
    if points.size < 4 or not np.isfinite(points).all():
        return None
    if points.ndim == 1 and points.size == 4:
        x1, y1, x2, y2 = (float(v) for v in points)
        return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)
    xy = points.reshape(-1, 2)
    return (
        float(xy[:, 0].min()),
        float(xy[:, 1].min()),
        float(xy[:, 0].max()),
        float(xy[:, 1].max()),
    )


def thumbnail(image: Image, box: Any | None) -> bytes:
    """A small JPEG of what was found: the box with a margin around it (the whole frame
    when there is no box), shrunk to fit THUMBNAIL_WH."""
    height, width = image.shape[:2]
    bounds = box_bounds(box) if box is not None else None
    if bounds is not None:
        x1, y1, x2, y2 = bounds
        margin_x = max((x2 - x1) * THUMBNAIL_MARGIN, (THUMBNAIL_MIN_SIDE - (x2 - x1)) / 2, 0)
        margin_y = max((y2 - y1) * THUMBNAIL_MARGIN, (THUMBNAIL_MIN_SIDE - (y2 - y1)) / 2, 0)
        left, right = max(0, int(x1 - margin_x)), min(width, int(np.ceil(x2 + margin_x)))
        top, bottom = max(0, int(y1 - margin_y)), min(height, int(np.ceil(y2 + margin_y)))
        if right - left >= 2 and bottom - top >= 2:
            image = image[top:bottom, left:right]
            height, width = image.shape[:2]
    scale = min(1.0, THUMBNAIL_WH[0] / width, THUMBNAIL_WH[1] / height)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
    return encode_jpeg(np.ascontiguousarray(image, dtype=np.uint8), THUMBNAIL_JPEG_QUALITY)
