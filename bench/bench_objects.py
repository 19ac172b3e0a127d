"""Row i: the bundled detector (`detect`, `detect_ocr`) against the bare ONNX model call."""

from __future__ import annotations

import time
from pathlib import Path

import cv2

import bench_local as local
from bench_videos import CACHE_DIR, FPS, _write
from forgesyte.plugins.base import Frame
from forgesyte.plugins.imaging import letterbox
from forgesyte.plugins.objects import INPUT_SIZE, ObjectsDetect, to_input_tensor
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService

PHOTO = Path("/usr/share/darknet/data/dog.jpg")
"""A real photograph from Debian's darknet package (scripts/install_services.sh)."""


def _scene(index: int, width: int, height: int) -> Frame:
    """dog.jpg cropped to 16:9, panning a pixel a frame, with a text plaque on the bicycle."""
    photo = cv2.imread(str(PHOTO))
    if photo is None:
        raise FileNotFoundError(f"{PHOTO} missing: run scripts/install_services.sh")
    crop_w = photo.shape[1] - 32
    crop_h = crop_w * 9 // 16
    top = (photo.shape[0] - crop_h) // 2
    crop = photo[top : top + crop_h, index % 32 : index % 32 + crop_w]
    frame = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    x, y = int(width * 0.5), int(height * 0.55)
    cv2.rectangle(frame, (x - 6, y - 22), (x + 120, y + 8), (255, 255, 255), -1)
    cv2.putText(frame, "KX 4718", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
    return frame


def objects_video(frames: int, width: int = 640, height: int = 360) -> Path:
    """A short video of a real street scene with text on an object, cached."""
    path = CACHE_DIR / f"objects_{width}x{height}_{frames}f.mp4"
    if path.exists():
        return path
    return _write(path, [_scene(i, width, height) for i in range(frames)], FPS)


class ObjectsComparison:
    """`detect` / `detect_ocr` through the video service, and the bare model on the same frames."""

    def __init__(self, path: Path) -> None:
        self.path = path
        frames = local.read_frames(path)
        self.frame_count = len(frames)
        self.detect = local.runner_for("detect")
        self.detect_ocr = local.runner_for("detect_ocr")
        self.model = ObjectsDetect()  # the runners' settings: ONNX Runtime's default threads
        self.model.load()
        self.tensors = [
            to_input_tensor(letterbox(frame, (INPUT_SIZE, INPUT_SIZE))[0]) for frame in frames
        ]

    def bare_ms(self) -> tuple[float, float]:
        """Wall and CPU ms per frame of the bare ONNX Runtime call on ready input tensors."""
        session, name = self.model.session, self.model.input_name
        start, cpu = time.perf_counter(), time.process_time()
        for tensor in self.tensors:
            session.run(None, {name: tensor})
        count = len(self.tensors)
        return (
            (time.perf_counter() - start) * 1000 / count,
            (time.process_time() - cpu) * 1000 / count,
        )

    def pipeline_ms(self, which: str) -> tuple[float, float]:
        """Wall and CPU ms per frame of `detect` or `detect_ocr` on the video, decoding included."""
        runner = self.detect if which == "detect" else self.detect_ocr
        start, cpu = time.perf_counter(), time.process_time()
        results = VideoFilePipelineService(runner).run(self.path, SamplingOptions())
        count = len(results.frames)
        return (
            (time.perf_counter() - start) * 1000 / count,
            (time.process_time() - cpu) * 1000 / count,
        )
