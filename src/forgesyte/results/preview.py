"""Preview frames: one analysed frame with the job's boxes and text drawn, as a JPEG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.results.timeline import frame_observations

JPEG_QUALITY = 90
TEXT_COLOUR = (0, 160, 255)  # BGR: orange for text lines
OBJECT_COLOUR = (60, 200, 60)  # BGR: green for detections

Image = npt.NDArray[np.uint8]


class FrameNotDecodable(Exception):
    """The stored video has no decodable frame at that index."""


def read_frame(video_path: Path, frame_index: int) -> Image:
    """Decode frame `frame_index` of a video, counting frames from the start.

    Frames are grabbed one by one (not seeked) so the index means what it meant during
    analysis; only the wanted frame is converted to an image.
    """
    capture = cv2.VideoCapture(str(video_path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise FrameNotDecodable("the video could not be opened")
        for _ in range(frame_index + 1):
            if not capture.grab():
                raise FrameNotDecodable(f"the video has no frame {frame_index}")
        ok, frame = capture.retrieve()
        if not ok or frame is None:
            raise FrameNotDecodable(f"frame {frame_index} could not be decoded")
        return cast(Image, frame)
    finally:
        capture.release()


def _label(image: Image, text: str, x: float, y: float, colour: tuple[int, int, int]) -> None:
    scale = max(0.4, image.shape[0] / 720)
    thickness = max(1, round(scale * 1.5))
    origin = (int(x), max(int(y) - 4, int(14 * scale)))
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness)


def draw_results(image: Image, result: dict[str, Any]) -> Image:
    """Draw a frame's detections (box, class, confidence) and text lines (box, text) on it."""
    lines, detections = frame_observations(result)
    thickness = max(1, image.shape[0] // 360)
    for detection in detections:
        x1, y1, x2, y2 = (round(float(v)) for v in detection["xyxy"])
        cv2.rectangle(image, (x1, y1), (x2, y2), OBJECT_COLOUR, thickness)
        confidence = float(detection.get("confidence") or 0.0)
        _label(image, f"{detection['class_name']} {confidence:.2f}", x1, y1, OBJECT_COLOUR)
    for line in lines:
        points = np.array(line["box"], dtype=np.float64).reshape(-1, 2).round().astype(np.int32)
        if len(points) < 2:
            continue
        cv2.polylines(image, [points], True, TEXT_COLOUR, thickness)
        _label(image, str(line["text"]), points[:, 0].min(), points[:, 1].min(), TEXT_COLOUR)
    return image


def render_preview(video_path: Path, entry: dict[str, Any]) -> bytes:
    """The JPEG of an analysed frame (at the video's size) with its results drawn."""
    image = read_frame(video_path, int(entry["frame_index"]))
    result = entry.get("result")
    draw_results(image, result if isinstance(result, dict) else {})
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes a BGR uint8 image
        raise FrameNotDecodable("the frame could not be encoded as JPEG")
    return bytes(encoded.tobytes())
