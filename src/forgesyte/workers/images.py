"""Preview frames: one analysed frame with the job's boxes and text drawn, as a JPEG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

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
TEXT_COLOUR = (0, 160, 255)  # BGR: orange for text lines
OBJECT_COLOUR = (60, 200, 60)  # BGR: green for detections

Image = npt.NDArray[np.uint8]


class FrameNotDecodable(Exception):
    """The stored video has no decodable frame at that index."""


def read_frame(video_path: Path, frame_index: int, max_frame_pixels: int) -> Image:
    """Decode frame `frame_index` of a video, numbered as the analysis numbered it.

    The same MP4-only decoder as the analysis: the packet index gives the frame's place,
    and decoding starts at its keyframe, so one preview costs at most one group of
    pictures, whatever the index.
    """
    try:
        with open_mp4(video_path, max_frame_pixels) as container:
            index = read_packet_index(container, video_stream(container))
        if frame_index >= index.frame_count:
            raise FrameNotDecodable(f"the video has no frame {frame_index}")
        plan = plan_decoding(index, [frame_index])
        for _, image in decode_planned_frames(video_path, plan, max_frame_pixels):
            return image
    except VideoDecodeError as exc:
        raise FrameNotDecodable(str(exc)) from None
    raise FrameNotDecodable(f"frame {frame_index} could not be decoded")


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


def render_preview(
    video_path: Path, entry: dict[str, Any], max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
) -> bytes:
    """The JPEG of an analysed frame (at the video's size) with its results drawn."""
    image = read_frame(video_path, int(entry["frame_index"]), max_frame_pixels)
    result = entry.get("result")
    draw_results(image, result if isinstance(result, dict) else {})
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes a BGR uint8 image
        raise FrameNotDecodable("the frame could not be encoded as JPEG")
    return bytes(encoded.tobytes())
