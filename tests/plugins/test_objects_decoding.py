"""`objects.detect`'s input tensor and box decoding, on values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from forgesyte.plugins.objects import (
    BINS,
    MEAN_RGB,
    STD_RGB,
    ObjectsDetect,
    cell_centres,
    expected_distances,
    to_input_tensor,
)

from .photos import photo


def test_input_tensor_is_rgb_nchw_normalised() -> None:
    image = photo("dog")[:416, :416].copy()
    expected = ((image[:, :, ::-1].astype(np.float32) - MEAN_RGB) / STD_RGB).transpose(2, 0, 1)
    tensor = to_input_tensor(image)
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    assert tensor.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(tensor[0], expected, atol=1e-5)


def test_cell_centres_are_half_a_stride_in() -> None:
    centres = cell_centres(32)
    assert centres.shape == (13 * 13, 2)
    assert centres[0].tolist() == [16.0, 16.0]
    assert centres[1].tolist() == [48.0, 16.0]  # row by row: x moves first
    assert centres[13].tolist() == [16.0, 48.0]
    assert centres[-1].tolist() == [400.0, 400.0]


def test_expected_distance_is_the_softmax_mean_of_the_bins() -> None:
    bins = np.full((1, 4 * BINS), -1e4, dtype=np.float32)
    bins[0, 3] = 0.0  # left: all weight on bin 3
    bins[0, BINS + 0] = bins[0, BINS + 10] = 0.0  # top: half on 0, half on 10 -> 5
    bins[0, 2 * BINS : 3 * BINS] = 0.0  # right: uniform over 0..10 -> 5
    bins[0, 3 * BINS + 7] = 0.0  # bottom: bin 7
    assert expected_distances(bins)[0].tolist() == pytest.approx([3.0, 5.0, 5.0, 7.0])


def test_decode_thresholds_maps_cells_to_boxes_and_suppresses() -> None:
    tool = ObjectsDetect()
    tool.load()
    cells = sum((416 // stride) ** 2 for stride in (8, 16, 32))
    scores = np.zeros((cells, 80), dtype=np.float32)
    bins = np.full((cells, 4 * BINS), -1e4, dtype=np.float32)
    bins[:, [2, BINS + 2, 2 * BINS + 2, 3 * BINS + 2]] = 0.0  # every side: 2 bins
    first_16 = (416 // 8) ** 2  # the stride-16 cells follow the stride-8 ones
    scores[first_16 + 0, 16] = 0.9  # stride 16, cell (0, 0): dog, centre (8, 8), 32 each side
    scores[first_16 + 2, 16] = 0.5  # cell (2, 0), centre (40, 8): IoU 1/3 with it, kept
    scores[1, 16] = 0.45  # stride 8, cell (1, 0), centre (12, 4), 4 bins = 32 each side:
    bins[1] = -1e4
    bins[1, [4, BINS + 4, 2 * BINS + 4, 3 * BINS + 4]] = 0.0  # IoU 0.78 with the first: gone
    scores[2, 0] = 0.41  # stride 8, centre (20, 4), 16 each side: a person, kept
    scores[3, 0] = 0.39  # below the threshold
    found = tool.decode(scores, bins)
    assert found.class_names == ("dog", "dog", "person")
    assert found.confidence.tolist() == pytest.approx([0.9, 0.5, 0.41])
    np.testing.assert_allclose(
        found.xyxy, [[-24, -24, 40, 40], [8, -24, 72, 40], [4, -12, 36, 20]], atol=1e-4
    )
