"""The built-in `ocr` plugin: text lines read by RapidOCR with its bundled PP-OCR models."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast

import cv2
import numpy as np

from forgesyte.plugins.base import (
    IMAGE_TYPE,
    Frame,
    PluginConfig,
    SimplePlugin,
    ThreadShare,
    Tool,
)
from forgesyte.plugins.detections import DETECTIONS_TYPE, Detections, parse_detections
from forgesyte.plugins.onnx_session import open_model
from forgesyte.plugins.values import TextLine, TextLines

CROP_MARGIN_PX = 4
CROP_MARGIN_FRACTION = 0.05
"""A detection's box is widened by max(4 px, 5% of its side) before reading, for context."""


DETECTION_LONG_SIDE = 640
"""The text detector sees the frame at its own size, or shrunk so that its longer side is
at most this many pixels; never enlarged (RapidOCR's default enlarges the short side to
736 px, which makes a 640x360 frame cost as much as a 1312x736 one). Only finding the
lines happens at this size: each line is then read from the full-size frame. On the
benchmark's 720p known-words video, 960, 800, 736 and 640 all read every word; detection
CPU per frame falls with the pixel count (1 thread: 0.66 s per frame at 960, 0.44 at 640).
"""

RECOGNITION_BATCH = 1
"""Text lines recognised per ONNX Runtime call. RapidOCR pads every line of a batch to the
widest one's width; one line per call costs the least (measured: 6 lines per call, its
default, cost 17 % more CPU per frame, 16 lines 24 % more)."""


def engine_params(
    threads: int | None,
    *,
    angle_classifier: bool = False,
    detection_long_side: int = DETECTION_LONG_SIDE,
) -> dict[str, Any]:
    """RapidOCR settings: detector input size, angle classifier, batch, threads, quiet logs.

    - the detector never enlarges a frame, and shrinks it to `detection_long_side` on its
      longer side (``Det.limit_type`` "max");
    - the angle classifier (lines upside down) runs only when asked: it costs a model call
      per frame and frames of video are upright;
    - recognition reads RECOGNITION_BATCH lines per call;
    - ONNX Runtime uses `threads` intra-op threads and one inter-op thread when given.

    Only engine settings: the models stay RapidOCR's bundled defaults (any model setting
    would make it try to download).
    """
    params: dict[str, Any] = {
        "Global.log_level": "warning",
        "Global.use_cls": angle_classifier,
        "Det.limit_type": "max",
        "Det.limit_side_len": detection_long_side,
        "Rec.rec_batch_num": RECOGNITION_BATCH,
    }
    if threads is not None:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    return params


def session_options(threads: int | None) -> Any:
    """ONNX Runtime session options for the OCR models: RapidOCR's, without spinning.

    RapidOCR's options (all graph optimisations, no memory arena, `threads` intra-op
    threads and one inter-op thread when given), plus: worker threads sleep when out of
    work instead of spinning. Spinning threads burn CPU that other analysis processes on
    the same cores need (measured at 720p, 2 threads, on a busy machine: 1.22 s CPU per
    frame with spinning, 0.71 s without).
    """
    from onnxruntime import GraphOptimizationLevel, SessionOptions

    options = SessionOptions()
    options.log_severity_level = 4
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def reopen_without_spinning(
    engine: Any, threads: int | None, share: ThreadShare | None = None
) -> int:
    """Reopen the engine's loaded ONNX sessions with `session_options`; return how many.

    RapidOCR has no setting for ONNX Runtime's spinning, so each loaded model's session
    is opened again from the same bundled model file: at `threads`, or at every count of
    `share` (a `SharedThreadsSession`, which RapidOCR calls like its own session). A
    session whose file is unknown is left as RapidOCR opened it.
    """
    from onnxruntime import InferenceSession

    reopened = 0
    for model in (engine.text_det, engine.text_cls, engine.text_rec):
        wrapper = getattr(model, "session", None)
        session = getattr(wrapper, "session", None)
        model_path = getattr(session, "_model_path", None)
        if wrapper is None or not isinstance(session, InferenceSession) or not model_path:
            continue
        wrapper.session = open_model(
            functools.partial(_reopen, model_path, session.get_providers()), threads, share
        )
        reopened += 1
    return reopened


def _reopen(model_path: str, providers: list[str], threads: int | None) -> Any:
    from onnxruntime import InferenceSession

    return InferenceSession(model_path, sess_options=session_options(threads), providers=providers)


def warm_up_image() -> Frame:
    """A small image with a word: reading it loads the detection and recognition models."""
    image = np.full((128, 128, 3), 255, np.uint8)
    cv2.putText(image, "OCR", (14, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
    return cast(Frame, image)


def crop_box(xyxy: list[float], resolution_wh: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixel rectangle (x1, y1, x2, y2) read for a detection box, or None if empty.

    The box is widened on each side by max(CROP_MARGIN_PX, CROP_MARGIN_FRACTION of its
    width or height), then rounded outwards and clipped to the frame.
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    margin_x = max(CROP_MARGIN_PX, CROP_MARGIN_FRACTION * (x2 - x1))
    margin_y = max(CROP_MARGIN_PX, CROP_MARGIN_FRACTION * (y2 - y1))
    width, height = resolution_wh
    left = max(0, int(np.floor(x1 - margin_x)))
    top = max(0, int(np.floor(y1 - margin_y)))
    right = min(width, int(np.ceil(x2 + margin_x)))
    bottom = min(height, int(np.ceil(y2 + margin_y)))
    if right <= left or bottom <= top or x2 <= x1 or y2 <= y1:
        return None
    return left, top, right, bottom


class OcrRead(Tool):
    """`ocr.read`: every text line in the frame (`TextLines`), or in each detection's box.

    After a detector (input ``detections``) it gives the detections, each with the lines
    read inside its box plus a margin (see `crop_box`): `Detections.with_text_lines`, or,
    for plain JSON (a separate plugin's detector), its items, each gaining "text_lines".
    """

    name = "read"
    input_types = (IMAGE_TYPE, DETECTIONS_TYPE)
    output_types = ("ocr_lines",)
    takes_typed_values = True

    def __init__(
        self,
        threads: int | None = None,
        *,
        angle_classifier: bool = False,
        detection_long_side: int = DETECTION_LONG_SIDE,
        share: ThreadShare | None = None,
    ) -> None:
        """`threads`: ONNX Runtime's intra-op threads (None: its default, one per core);
        `share`: when given, each model call uses the threads it gives now instead.

        `angle_classifier`: also run RapidOCR's angle classifier, which turns lines that
        are upside down before reading them (off by default: video frames are upright, and
        it costs a model call per frame). `detection_long_side`: see DETECTION_LONG_SIDE
        (larger finds smaller text in large frames, at a cost).
        """
        if detection_long_side < 32:
            raise ValueError("detection_long_side must be at least 32 pixels")
        self.threads = threads
        self.share = share
        self.angle_classifier = angle_classifier
        self.detection_long_side = detection_long_side
        self._engine: Any = None

    def load(self) -> None:
        """Load the RapidOCR engine and its models once for this process (bundled models).

        RapidOCR opens its detection, recognition (and, when asked for, angle) models on
        first use; one read of a small text image here does that, so the first job does not
        pay for it; the sessions are then reopened without spinning (`session_options`).
        ONNX Runtime uses `threads` threads when given (the plugin configuration's
        analysis_threads), or those its thread share gives call by call.
        """
        if self._engine is None:
            from rapidocr import RapidOCR

            engine = RapidOCR(
                params=engine_params(
                    self.threads,
                    angle_classifier=self.angle_classifier,
                    detection_long_side=self.detection_long_side,
                )
            )
            engine(warm_up_image())
            reopen_without_spinning(engine, self.threads, self.share)
            engine(warm_up_image())
            self._engine = engine

    def read_lines(self, image: Frame) -> TextLines:
        """Run OCR on an image and return its lines in reading order.

        When the detector finds no text, RapidOCR stops there: no recognition call.
        """
        self.load()
        output = self._engine(image)
        if output.txts is None or output.boxes is None or output.scores is None:
            return TextLines()
        return TextLines(
            TextLine.rounded(str(text), score, box)
            for text, score, box in zip(output.txts, output.scores, output.boxes, strict=True)
        )

    def read_inside(self, frame: Frame, xyxy: list[float]) -> TextLines:
        """Read the text inside one box (plus margin); line boxes in frame pixels.

        The crop is read as it is: the detector no longer enlarges its input, and RapidOCR
        itself pads a crop that is very flat or under 30 px high (mapping its boxes back).
        """
        height, width = frame.shape[:2]
        rect = crop_box(xyxy, (width, height))
        if rect is None:
            return TextLines()
        left, top, right, bottom = rect
        lines = self.read_lines(np.ascontiguousarray(frame[top:bottom, left:right]))
        return TextLines(line.placed_in(rect) for line in lines)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        """Read the whole frame, or the inside of each detection when detections are given."""
        if DETECTIONS_TYPE not in inputs:
            return self.read_lines(frame)
        given = inputs[DETECTIONS_TYPE]
        if isinstance(given, Detections):
            return given.with_text_lines([self.read_inside(frame, b) for b in given.xyxy.tolist()])
        return [
            {**item, "text_lines": self.read_inside(frame, item["xyxy"]).to_json()}
            for item in parse_detections(given)
        ]


def plugin(config: PluginConfig | None = None) -> SimplePlugin:
    """The entry point of the built-in `ocr` plugin."""
    config = config or PluginConfig()
    return SimplePlugin("ocr", [OcrRead(config.analysis_threads, share=config.thread_share)])
