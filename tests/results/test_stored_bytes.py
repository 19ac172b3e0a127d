"""The stored results and timeline of four pipelines on made videos, byte for byte.

The files under ``stored_bytes/`` were written by this module's own `write_job` with the
code as it was before tools handed typed values to each other (the results serialised by
each tool). Each case runs the whole path of a job's analysis child (decode, sample, run
the pipeline, `FrameResultsWriter`), so a change in how values travel between tools or
are serialised shows here as a changed byte. (The timelines were written again when
they gained ``"shots": []`` and left out readings that are no text: the third party's
line of confidence 0 is gone from it, nothing else changed.)

- ``ocr_only``: whole-frame text lines, with ``skip_unchanged`` (entries reused).
- ``detect_ocr``: the bundled detector's detections, each with the text read inside it;
  object tracks and text segments in the timeline.
- ``plates_ocr``: OpenCV's plate cascade, then OCR inside each plate.
- ``third_party``: tools written as a separate plugin would be, returning plain JSON: a
  detector whose detections (unsorted, an extra key) ``ocr.read`` reads inside; a tool
  that takes a built-in detector's detections as JSON; and a node of odd items that the
  timeline must ignore, beside a text line and a detection that give no confidence.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from forgesyte.pipelines import PipelineRunner, load_catalog
from forgesyte.pipelines.catalog import parse_definition
from forgesyte.plugins import discover_plugins
from forgesyte.plugins.base import Frame, PluginConfig, SimplePlugin, Tool
from forgesyte.results.writer import FrameResultsWriter
from forgesyte.video.service import SamplingOptions, VideoFilePipelineService
from tests.plugins.photos import photo
from tests.plugins.synthetic import draw_plate
from tests.support.videos import write_text_video

EXPECTED = Path(__file__).parent / "stored_bytes"
FPS = 10


class ReturnsJson(Tool):
    """A tool as a separate plugin writes one: it returns plain JSON (its `value`)."""

    input_types = ("image",)
    value: ClassVar[tuple[Any, ...]]

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        return copy.deepcopy(list(self.value))


class JsonBoxes(ReturnsJson):
    """A detector's JSON detections, in its own order, with a key of its own."""

    name = "boxes"
    output_types = ("detections",)
    value = (
        {"xyxy": [500.0, 20.0, 600.0, 80.0], "confidence": 0.5, "class_id": 1, "class_name": "x"},
        {"xyxy": [220.0, 150.0, 420.0, 195.0], "confidence": 0.9, "class_id": 0,
         "class_name": "licence_plate", "track": 7},
    )  # fmt: skip


class Odd(ReturnsJson):
    """Items the timeline ignores, and a line and a detection without a confidence."""

    name = "odd"
    output_types = ("odd",)
    value = (
        {"label": "not an observation"},
        3,
        "text",
        {"text": "NO BOX", "confidence": 0.5},
        {"xyxy": [1.0, 2.0, 3.0], "class_name": "three numbers"},
        {"text": "NO SCORE", "box": [[0, 0], [10, 0], [10, 5], [0, 5]]},
        {"xyxy": [5.0, 5.0, 50.0, 50.0], "class_name": "thing"},
    )


class Summary(Tool):
    """Takes a built-in detector's detections: a separate plugin reads them as JSON."""

    name = "summary"
    input_types = ("detections",)
    output_types = ("summary",)

    def run(self, frame: Frame, inputs: Mapping[str, Any]) -> Any:
        found = inputs["detections"]
        return {"count": len(found), "names": [item["class_name"] for item in found]}


THIRD_PARTY_PIPELINE = """{
  "id": "third_party",
  "entry_nodes": ["boxes", "plates", "odd"],
  "output_nodes": ["ocr", "summary", "odd"],
  "nodes": [
    {"id": "boxes", "plugin_type": "thirdparty", "tool_type": "boxes",
     "input_types": ["image"], "output_types": ["detections"]},
    {"id": "ocr", "plugin_type": "ocr", "tool_type": "read",
     "input_types": ["detections"], "output_types": ["ocr_lines"]},
    {"id": "plates", "plugin_type": "opencv", "tool_type": "plates",
     "input_types": ["image"], "output_types": ["detections"]},
    {"id": "summary", "plugin_type": "thirdparty", "tool_type": "summary",
     "input_types": ["detections"], "output_types": ["summary"]},
    {"id": "odd", "plugin_type": "thirdparty", "tool_type": "odd",
     "input_types": ["image"], "output_types": ["odd"]}
  ],
  "edges": [{"from_node": "boxes", "to_node": "ocr"},
            {"from_node": "plates", "to_node": "summary"}]
}"""


def write_mp4(path: Path, frames: list[Frame]) -> Path:
    """Frames as an MP4 (mp4v), FPS frames a second."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def street_frames() -> list[Frame]:
    """dog.jpg at 640 x 360, panning 4 px a frame, with a plaque on the bicycle."""
    image = photo("dog")
    crop_w = image.shape[1] - 32
    top = (image.shape[0] - crop_w * 9 // 16) // 2
    frames = []
    for index in range(4):
        crop = image[top : top + crop_w * 9 // 16, 4 * index : 4 * index + crop_w]
        frame = cv2.resize(crop, (640, 360), interpolation=cv2.INTER_AREA)
        cv2.rectangle(frame, (314, 176), (440, 206), (255, 255, 255), -1)
        cv2.putText(frame, "KX 4718", (320, 198), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
        frames.append(frame)
    return frames


def plate_frames() -> list[Frame]:
    """A plate moving 6 px a frame on grey, 640 x 360."""
    frames = []
    for index in range(3):
        frame = np.full((360, 640, 3), 90, np.uint8)
        draw_plate(frame, (220 + 6 * index, 150))
        frames.append(frame)
    return frames


def made_video(case: str, folder: Path) -> tuple[Path, SamplingOptions]:
    """The video and sampling options of one case."""
    if case == "ocr_only":
        texts = ["PLATFORM 9"] * 3 + [""] + ["EXIT 4", "EXIT 4", "GATE 12"]
        return write_text_video(folder / "text.mp4", texts), SamplingOptions(skip_unchanged=True)
    if case == "detect_ocr":
        return write_mp4(folder / "street.mp4", street_frames()), SamplingOptions()
    return write_mp4(folder / "plates.mp4", plate_frames()), SamplingOptions()


def write_job(case: str, folder: Path) -> tuple[bytes, bytes]:
    """Analyse the case's video as an analysis child does; the results and timeline bytes."""
    third_party = SimplePlugin("thirdparty", [JsonBoxes(), Summary(), Odd()])
    registry = discover_plugins(
        PluginConfig(analysis_threads=1), extra=[("thirdparty", lambda: third_party)]
    )
    if case == "third_party":
        definition = parse_definition(THIRD_PARTY_PIPELINE, "third_party.json")
    else:
        definition = load_catalog(registry).pipelines[case].definition
    runner = PipelineRunner(definition, registry)
    runner.load()
    video, sampling = made_video(case, folder)
    with FrameResultsWriter(folder) as writer:
        VideoFilePipelineService(runner).analyse(
            video,
            sampling,
            on_frame=lambda frame: writer.add(frame.to_json()),
            on_video=lambda info: writer.start(info.resolution_wh),
        )
        writer.finish()
    return writer.results_path.read_bytes(), writer.timeline_path.read_bytes()


@pytest.mark.parametrize("case", ["ocr_only", "detect_ocr", "plates_ocr", "third_party"])
def test_a_job_stores_the_same_bytes_as_before(case: str, tmp_path: Path) -> None:
    results, timeline = write_job(case, tmp_path)
    assert results == (EXPECTED / f"{case}.jsonl").read_bytes()
    assert timeline == (EXPECTED / f"{case}.timeline.json").read_bytes()
