"""Fixtures for the plugin tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .synthetic import build_yolo_onnx

YoloModelFactory = Callable[..., Path]


@pytest.fixture
def make_yolo_model(tmp_path: Path) -> YoloModelFactory:
    """A factory writing tiny ONNX YOLO models into the test's temporary folder."""
    counter = iter(range(1000))

    def make(output: np.ndarray, **kwargs: Any) -> Path:
        path = tmp_path / f"tiny_yolo_{next(counter)}.onnx"
        return build_yolo_onnx(path, output, **kwargs)

    return make
