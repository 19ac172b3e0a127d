"""One way to open an ONNX Runtime session for a plugin: CPU, quiet, a given thread count;
and `OnnxDetector`, what the detectors running an ONNX model (objects, yolo) hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgesyte.plugins.detections import DetectorTool


def open_cpu_session(model_path: Path, threads: int | None) -> Any:
    """An InferenceSession on the CPU with `threads` intra-op threads (None: one per core).

    Inter-op work stays on one thread (the models here are sequential graphs) and ONNX
    Runtime logs errors only. Its exceptions pass through to the caller.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:  # else ONNX Runtime's default: one per core
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class OnnxDetector(DetectorTool):
    """A detector running one ONNX model: the limits of its decoding (candidates scoring
    at least confidence_threshold; per-class NMS at iou_threshold; at most max_detections),
    the threads ONNX Runtime may use, and the session with its input's name (after load())."""

    def __init__(
        self,
        confidence_threshold: float,
        iou_threshold: float,
        max_detections: int,
        threads: int | None,
    ) -> None:
        self.confidence_threshold = confidence_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.threads = threads
        self.session: Any = None  # the ONNX Runtime session, after load()
        self.input_name = ""  # its input's name
