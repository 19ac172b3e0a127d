"""The built-in `opencv` plugin: detectors that OpenCV itself ships, so they run with no weights.

Tools (each gives ``detections``, one class each, ``class_id`` 0):

- ``opencv.faces``: frontal faces, Haar cascade ``haarcascade_frontalface_default.xml``.
- ``opencv.people``: standing people, HOG + linear SVM (OpenCV's default people detector).
- ``opencv.bodies``: full bodies, Haar cascade ``haarcascade_fullbody.xml``.
- ``opencv.plates``: licence plates, Haar cascade ``haarcascade_russian_plate_number.xml``
  (trained on Russian plates; it also finds many other dark-on-light plates).

Confidence: these classifiers give a raw score, not a probability (a Haar cascade its last
stage's sum, ``levelWeights``; HOG its SVM margin). It is squashed through the logistic
function ``1 / (1 + exp(-score))`` into 0..1: higher is surer and the order is kept, but the
value is not calibrated and compares only within one tool.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from forgesyte.plugins.base import Frame, PluginConfig, SimplePlugin
from forgesyte.plugins.detections import Detections, DetectorTool

HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 3
HOG_SCALE = 1.05


def score_to_confidence(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Squash raw classifier scores into 0..1 with the logistic function."""
    raw = np.asarray(scores, dtype=np.float64).reshape(-1)
    return 1.0 / (1.0 + np.exp(-raw))


def haarcascades_dir() -> Path:
    """The folder of Haar cascade files that opencv-python ships (``cv2.data.haarcascades``)."""
    return Path(importlib.import_module("cv2.data").haarcascades)


class HaarCascadeTool(DetectorTool):
    """A Haar cascade shipped with opencv-python, as a detector tool of one class."""

    cascade_file: str
    class_name: str

    def __init__(self) -> None:
        self._cascade: Any = None

    @property
    def cascade_path(self) -> Path:
        """Where opencv-python keeps this tool's cascade file."""
        return haarcascades_dir() / self.cascade_file

    def unavailable_reason(self) -> str | None:
        """Why the tool cannot run: the cascade file is not in this OpenCV install."""
        if not self.cascade_path.is_file():
            return f"OpenCV cascade {self.cascade_path} is missing from this install"
        return None

    def _open(self) -> None:
        """Read the cascade."""
        cascade = cv2.CascadeClassifier(str(self.cascade_path))
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not read cascade {self.cascade_path}")
        self._cascade = cascade

    def detect(self, frame: Frame) -> Detections:
        """Run the cascade on the frame (in grey); detections in frame pixels."""
        self.load()
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=HAAR_SCALE_FACTOR,
            minNeighbors=HAAR_MIN_NEIGHBORS,
            outputRejectLevels=True,
        )  # nothing found: empty tuples, i.e. no detections
        scores = score_to_confidence(weights)
        return Detections.from_opencv_rects(rects, self.class_name, confidence=scores)


class Faces(HaarCascadeTool):
    """`opencv.faces`: frontal faces (class ``face``)."""

    name = "faces"
    cascade_file = "haarcascade_frontalface_default.xml"
    class_name = "face"


class Bodies(HaarCascadeTool):
    """`opencv.bodies`: full human bodies by Haar cascade (class ``person``)."""

    name = "bodies"
    cascade_file = "haarcascade_fullbody.xml"
    class_name = "person"


class Plates(HaarCascadeTool):
    """`opencv.plates`: licence plates (class ``licence_plate``)."""

    name = "plates"
    cascade_file = "haarcascade_russian_plate_number.xml"
    class_name = "licence_plate"


class People(DetectorTool):
    """`opencv.people`: standing people by HOG + linear SVM (class ``person``)."""

    name = "people"
    class_name = "person"

    def __init__(self) -> None:
        self._hog: Any = None

    def _open(self) -> None:
        """Build the HOG descriptor with OpenCV's default people detector."""
        hog = cv2.HOGDescriptor()
        hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))
        self._hog = hog

    def detect(self, frame: Frame) -> Detections:
        """Run the HOG people detector on the frame; detections in frame pixels."""
        self.load()
        win_w, win_h = self._hog.winSize
        height, width = frame.shape[:2]
        if width < win_w or height < win_h:
            return Detections.empty()
        rects, weights = self._hog.detectMultiScale(frame, scale=HOG_SCALE)
        scores = score_to_confidence(weights)
        return Detections.from_opencv_rects(rects, self.class_name, confidence=scores)


def plugin(config: PluginConfig | None = None) -> SimplePlugin:
    """The entry point of the built-in `opencv` plugin (OpenCV's bundled cascades: no config)."""
    return SimplePlugin("opencv", [Faces(), People(), Bodies(), Plates()])
