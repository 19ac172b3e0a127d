"""One way to open an ONNX Runtime session for a plugin: CPU, quiet, a given thread count;
a model opened at every thread count a `ThreadShare` may answer (`SharedThreadsSession`);
and `OnnxDetector`, what the detectors running an ONNX model (objects, yolo) hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgesyte.plugins.base import ThreadShare
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


class SharedThreadsSession:
    """One model opened once per thread count of a `ThreadShare`; each `run` goes to the
    session of the threads the share gives now, so a job alone on the machine uses its
    idle cores and drops back at its next call when another job starts.

    ONNX Runtime fixes a session's intra-op threads when it is opened, hence one session
    per count (about 35 MiB for OCR's two models, 20 MiB for the bundled detector). The
    outputs do not depend on the count: on the OCR and detector models, 1, 2, 3, 4 and 8
    threads gave the same bits on every test frame (tests/plugins/test_thread_share.py).
    """

    def __init__(self, open_at: Callable[[int], Any], share: ThreadShare) -> None:
        """open_at(threads) opens the model with that many intra-op threads."""
        self.share = share
        self.sessions = {threads: open_at(threads) for threads in share.counts}

    def now(self) -> Any:
        """The session of the threads the share gives now."""
        return self.sessions[self.share.threads_now()]

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """InferenceSession.run on the session of the threads the share gives now."""
        return self.now().run(*args, **kwargs)

    def get_inputs(self) -> Any:
        """The model's inputs (the same in every session)."""
        return self.now().get_inputs()

    def get_outputs(self) -> Any:
        """The model's outputs."""
        return self.now().get_outputs()

    def get_modelmeta(self) -> Any:
        """The model's metadata."""
        return self.now().get_modelmeta()

    def get_providers(self) -> Any:
        """The execution providers (the same in every session)."""
        return self.now().get_providers()


def open_model(
    open_at: Callable[[int | None], Any], threads: int | None, share: ThreadShare | None
) -> Any:
    """The model opened at `threads`, or at every count of `share` when there is one."""
    return open_at(threads) if share is None else SharedThreadsSession(open_at, share)


class OnnxDetector(DetectorTool):
    """A detector running one ONNX model: the limits of its decoding (candidates scoring
    at least confidence_threshold; per-class NMS at iou_threshold; at most max_detections),
    the threads ONNX Runtime may use (fixed, or following a `ThreadShare`), and the session
    with its input's name (after load())."""

    def __init__(
        self,
        confidence_threshold: float,
        iou_threshold: float,
        max_detections: int,
        threads: int | None,
        share: ThreadShare | None = None,
    ) -> None:
        self.confidence_threshold = confidence_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self.threads = threads
        self.share = share
        self.session: Any = None  # the ONNX Runtime session, after load()
        self.input_name = ""  # its input's name

    def open_session(self, model_path: Path) -> Any:
        """The model's session on the CPU: at its threads, or following its share."""
        return open_model(
            lambda threads: open_cpu_session(model_path, threads), self.threads, self.share
        )
