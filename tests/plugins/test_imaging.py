"""Fitting a frame into a detector's input (letterbox) and mapping its boxes back."""

from __future__ import annotations

import numpy as np

from forgesyte.plugins.detections import Detections
from forgesyte.plugins.imaging import Letterbox, letterbox


def test_letterbox_keeps_aspect_and_pads_grey() -> None:
    image, fit = letterbox(np.full((360, 640, 3), (30, 60, 90), np.uint8), (64, 64))
    assert image.shape == (64, 64, 3)
    assert fit.scale == 0.1
    assert fit.pad_xy == (0, 14)
    assert (image[:14] == 114).all() and (image[50:] == 114).all()
    assert (image[14:50] == (30, 60, 90)).all()


def test_letterbox_rounds_odd_padding_like_ultralytics() -> None:
    image, fit = letterbox(np.zeros((100, 50, 3), np.uint8), (64, 64))
    # 50 x 100 -> 32 x 64; 32 columns of padding, 16 each side.
    assert fit.scale == 0.64 and fit.pad_xy == (16, 0)
    image, fit = letterbox(np.zeros((10, 33, 3), np.uint8), (64, 64))
    # 33 x 10 -> 64 x 19 (19.39 rounded); 45 rows of padding: 22 above, 23 below.
    assert fit.pad_xy == (0, 22)
    assert (image[:22] == 114).all() and (image[41:] == 114).all() and (image[22:41] == 0).all()


def test_boxes_map_back_to_the_frame_and_are_clipped_to_it() -> None:
    found = Detections.from_opencv_rects(
        [[10, 10, 20, 20], [0, 0, 4, 4], [50, 20, 30, 10]], "x", confidence=[0.9, 0.8, 0.7]
    )
    mapped = Letterbox(0.5, (10, 0), (100, 50)).to_frame(found)
    # (0, 0, 4, 4) maps to x in -20..-12: clipped to no width, dropped.
    assert mapped.xyxy.tolist() == [[0.0, 20.0, 40.0, 50.0], [80.0, 40.0, 100.0, 50.0]]
    assert mapped.confidence.tolist() == [0.9, 0.7]
