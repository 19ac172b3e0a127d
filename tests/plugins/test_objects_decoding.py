"""`objects.detect`'s input tensor and peak decoding, on heat maps and side distances made
with known boxes, and the shapes of the bundled model's two heads."""

from __future__ import annotations

import numpy as np
import pytest

from forgesyte.plugins.base import Frame
from forgesyte.plugins.objects import (
    INPUT_WH,
    STRIDE,
    ObjectsDetect,
    decode_peaks,
    input_wh,
    to_input_tensor,
)

from .photos import photo

CLASSES = 80
DOG, PERSON, BICYCLE, CAR = 16, 0, 1, 2  # COCO class ids


def heads(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """An empty heat map (height x width x 80) and side distances (height x width x 4)."""
    heat = np.zeros((height, width, CLASSES), dtype=np.float32)
    sides = np.zeros((height, width, 4), dtype=np.float32)
    return heat, sides


def test_input_tensor_is_rgb_nhwc_in_0_to_255() -> None:
    image = photo("dog")[:448, :768].copy()
    tensor = to_input_tensor(image)
    assert tensor.shape == (1, 448, 768, 3) and tensor.dtype == np.float32
    assert tensor.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(tensor[0], image[:, :, ::-1].astype(np.float32))


@pytest.mark.parametrize(
    ("frame_hw", "expected"),
    [((360, 640), (768, 448)), ((720, 720), (768, 448)), ((640, 360), (448, 768))],
)
def test_the_input_is_turned_for_a_frame_taller_than_wide(
    frame_hw: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert INPUT_WH == (768, 448)
    assert input_wh(np.zeros((*frame_hw, 3), np.uint8)) == expected


def test_peaks_become_boxes_around_the_cell_corner() -> None:
    heat, sides = heads(28, 48)
    heat[9:12, 19:22, DOG] = 0.6  # a blob whose centre (row 10, col 20) is its only peak
    heat[10, 20, DOG] = 0.9
    sides[10, 20] = [8, 12, 16, 20]  # left, top, right, bottom: corner (80, 40)
    heat[10, 20, PERSON] = 0.5  # another class at the same cell: its own peak
    heat[5, 5:7, CAR] = 0.7  # a plateau of two equal cells: both are peaks
    sides[5, 5] = sides[5, 6] = [4, 4, 4, 4]
    heat[20, 40, CAR] = 0.34  # under the threshold
    found = decode_peaks(heat, sides, 0.35)
    assert found.class_names == ("dog", "car", "car", "person")
    assert found.confidence.tolist() == pytest.approx([0.9, 0.7, 0.7, 0.5])
    np.testing.assert_allclose(
        found.xyxy,
        [[72, 28, 96, 60], [16, 16, 24, 24], [20, 16, 28, 24], [72, 28, 96, 60]],
    )
    assert found.class_id.tolist() == [DOG, CAR, CAR, PERSON]


def test_peaks_at_the_edges_see_no_cell_of_the_other_edge() -> None:
    heat, sides = heads(28, 48)
    heat[0, 0, BICYCLE] = 0.4  # top-left corner
    heat[27, 47, BICYCLE] = 0.8  # bottom-right: a neighbour only if indices wrapped round
    heat[0, 47, BICYCLE] = 0.8  # top-right: likewise
    heat[27, 46, BICYCLE] = 0.5  # next to the bottom-right peak: not a peak
    sides[27, 47] = [10, 10, 2, 2]
    found = decode_peaks(heat, sides, 0.35)
    assert found.confidence.tolist() == pytest.approx([0.8, 0.8, 0.4])
    corners = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2  # zero sides except (27, 47)
    assert corners.tolist() == [[47 * STRIDE, 0], [188 - 4, 108 - 4], [0, 0]]


def test_only_the_best_peaks_are_kept() -> None:
    heat, sides = heads(40, 40)
    scores = np.linspace(0.4, 0.99, 200, dtype=np.float32)
    rows, cols = np.divmod(np.arange(200), 20)
    heat[rows * 2, cols * 2, PERSON] = scores  # 200 lone peaks, no two cells touching
    found = decode_peaks(heat, sides, 0.35, limit=100)
    assert len(found) == 100
    np.testing.assert_allclose(found.confidence, scores[::-1][:100].astype(np.float64))


def test_decode_suppresses_overlaps_within_a_class_and_keeps_the_limit() -> None:
    tool = ObjectsDetect(max_detections=3)
    heat, sides = heads(28, 48)
    for col, score in ((10, 0.9), (12, 0.8), (30, 0.7)):
        heat[10, col, DOG] = score
        sides[10, col] = [30, 30, 30, 30]
    heat[10, 12, PERSON] = 0.6  # the second dog's box as a person: another class, kept
    sides[20, 40] = [5, 5, 5, 5]
    heat[20, 40, CAR] = 0.5  # a fourth detection: over the limit
    found = tool.decode(heat, sides)
    # the dog at col 12 overlaps the one at col 10 (IoU 52/68 > 0.5) and is dropped
    assert found.class_names == ("dog", "dog", "person")
    assert found.confidence.tolist() == pytest.approx([0.9, 0.7, 0.6])
    np.testing.assert_allclose(found.xyxy[:, 0], [10, 90, 18])


class FixedHeads(ObjectsDetect):
    """`objects.detect` with the model call replaced by made heads, to check the letterbox
    and the mapping back to frame pixels against boxes worked out by hand."""

    def __init__(self, heat: np.ndarray, sides: np.ndarray) -> None:
        super().__init__()
        self.heat, self.sides = heat, sides
        self.tensor_shapes: list[tuple[int, ...]] = []

    def _open(self) -> None:
        """No session: `infer` answers."""

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.tensor_shapes.append(tensor.shape)
        return self.heat, self.sides


def test_detect_maps_boxes_back_through_the_letterbox() -> None:
    # 640 x 360 in 768 x 448: scaled by 1.2, 8-pixel bands above and below
    heat, sides = heads(112, 192)
    heat[30, 50, DOG] = 0.8
    sides[30, 50] = [20, 40, 60, 80]  # input box [180, 80, 260, 200]
    heat[100, 180, CAR] = 0.6
    sides[100, 180] = [40, 40, 100, 100]  # [680, 360, 820, 500]: clipped to the frame
    tool = FixedHeads(heat, sides)
    found = tool.detect(np.zeros((360, 640, 3), np.uint8))
    assert tool.tensor_shapes == [(1, 448, 768, 3)]
    assert found.class_names == ("dog", "car")
    np.testing.assert_allclose(
        found.xyxy, [[150, 60, 650 / 3, 160], [680 / 1.2, 352 / 1.2, 640, 360]]
    )


def test_detect_letterboxes_a_portrait_frame_into_a_portrait_input() -> None:
    # 360 x 640 in 448 x 768: scaled by 1.2, 8-pixel bands left and right
    heat, sides = heads(192, 112)
    heat[50, 30, PERSON] = 0.7
    sides[50, 30] = [20, 40, 60, 80]  # input box [100, 160, 180, 280]
    tool = FixedHeads(heat, sides)
    found = tool.detect(np.zeros((640, 360, 3), np.uint8))
    assert tool.tensor_shapes == [(1, 768, 448, 3)]
    np.testing.assert_allclose(found.xyxy, [[92 / 1.2, 160 / 1.2, 172 / 1.2, 280 / 1.2]])


@pytest.mark.parametrize("input_hw", [(448, 768), (768, 448), (320, 320)])
def test_the_bundled_model_gives_stride_4_heads_at_any_input(input_hw: tuple[int, int]) -> None:
    tool = ObjectsDetect(threads=2)
    tool.load()
    image: Frame = np.full((*input_hw, 3), 114, np.uint8)
    image[100:200, 100:300] = photo("dog")[250:350, 150:350]
    heat, sides = tool.infer(to_input_tensor(image))
    height, width = input_hw[0] // STRIDE, input_hw[1] // STRIDE
    assert heat.shape == (height, width, CLASSES) and sides.shape == (height, width, 4)
    assert heat.min() >= 0 and heat.max() <= 1  # already through a sigmoid
