"""One way to open an ONNX Runtime session for a plugin: CPU, quiet, a given thread count."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
