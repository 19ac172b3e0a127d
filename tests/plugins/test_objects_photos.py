"""`objects.detect` on real photographs (Debian's darknet data): on each whole photo, and in
a slow zoom over an everyday object, filmed as a 640 x 360 MP4 and decoded as a job sees it.

The objects in the photos are the labelled evaluation set's (bench/evaluation/
coco_photos.json, boxes in photo pixels; docs/detectors.md). The model gets two names wrong
on these photos: it calls the pickup of dog.jpg a `car` (COCO says truck) and the horse of
person.jpg a `sheep`. Each is allowed only on its own object, so any other wrong class, or
a box on bare background, fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from forgesyte.plugins.base import Frame
from forgesyte.plugins.detections import Detections, box_iou
from forgesyte.plugins.objects import DEFAULT_CONFIDENCE, ObjectsDetect

from .photos import PHOTOS, photo

THRESHOLD = 0.35
LABELS = Path(__file__).resolve().parents[2] / "bench" / "evaluation" / "coco_photos.json"
MATCH_IOU = 0.5  # a detection finds a labelled object at this IoU (PASCAL VOC, COCO AP50)
ON_OBJECT = 0.5  # a detection lies on an object when this share of its box is inside it

RENAMED = {("dog", "car"): "truck", ("person", "sheep"): "horse"}
"""(photo, class reported): the class of the one object the model gives that name."""

# Photo -> the labelled objects (their index in the labels) found on the whole photo.
FOUND_WHOLE = {
    "dog": [1, 2],  # the bicycle and the pickup (as a car); the dog scores 0.33 (below)
    "eagle": [0],
    "giraffe": [0, 1],
    "horses": [0, 3],  # the white horse and the grey one; the dark one is boxed with its
    # neighbour behind it, the one behind the white horse is too hidden
    "kite": [0, 1, 2, 3],  # the two people in front, the large kite and one small one
    "person": [0, 1, 2],  # the person, the dog, the horse (as a sheep)
}

# (photo, index of a large everyday object) -> a slow zoom from the widest 16:9 view to it.
ZOOMS = [("dog", 0), ("person", 0), ("horses", 0)]
ZOOM_FRAMES = 20
FRAME_WH = (640, 360)


@dataclass(frozen=True)
class Labelled:
    """A labelled object or crowd in photo (or frame) pixels."""

    class_name: str
    xyxy: tuple[float, float, float, float]


def labels(name: str) -> tuple[list[Labelled], list[Labelled]]:
    """The objects and crowds labelled in a darknet photo (e.g. ``dog``)."""
    entries = json.loads(LABELS.read_text(encoding="utf-8"))["photos"]
    (entry,) = [e for e in entries if e["path"] == str(PHOTOS / f"{name}.jpg")]

    def boxes(items: list[dict[str, object]]) -> list[Labelled]:
        return [Labelled(str(i["class_name"]), tuple(i["xyxy"])) for i in items]  # type: ignore[arg-type]

    return boxes(entry["objects"]), boxes(entry.get("crowds", []))


@pytest.fixture(scope="module")
def detector() -> ObjectsDetect:
    """One loaded detector for the module (the model loads once)."""
    tool = ObjectsDetect(threads=2)
    tool.load()
    return tool


def share_inside(box: np.ndarray, region: tuple[float, float, float, float]) -> float:
    """The share of the box's area inside the region."""
    inner = np.minimum(box[2:], region[2:]) - np.maximum(box[:2], region[:2])
    area = float(np.prod(box[2:] - box[:2]))
    return float(np.prod(inner.clip(min=0))) / area if area > 0 else 0.0


def finds(found: Detections, target: Labelled) -> bool:
    """Whether a detection of the target's class boxes it (IoU >= MATCH_IOU)."""
    boxes = found.xyxy[[name == target.class_name for name in found.class_names]]
    return bool(len(boxes)) and float(box_iou(np.array(target.xyxy), boxes).max()) >= MATCH_IOU


def false_classes(
    name: str, found: Detections, objects: list[Labelled], crowds: list[Labelled]
) -> list[str]:
    """What is wrong in the detections: a box on no labelled object or crowd, a class the
    photo does not show (but for RENAMED on its own object). Empty when all is right."""
    shown = {o.class_name for o in objects + crowds}
    wrong = []
    for label, box in zip(found.class_names, found.xyxy, strict=True):
        under = [o for o in objects + crowds if share_inside(box, o.xyxy) >= ON_OBJECT]
        renamed = RENAMED.get((name, label))
        if not under:
            wrong.append(f"{label} on no object at {box.round(1).tolist()}")
        elif label not in shown and renamed not in {o.class_name for o in under}:
            wrong.append(f"false class {label} at {box.round(1).tolist()}")
    return wrong


def test_default_threshold_is_the_one_tested() -> None:
    assert DEFAULT_CONFIDENCE == THRESHOLD


@pytest.mark.parametrize("name", sorted(FOUND_WHOLE))
def test_whole_photo_objects_are_found_and_nothing_false(
    detector: ObjectsDetect, name: str
) -> None:
    objects, crowds = labels(name)
    found = detector.detect(photo(name))
    assert found.confidence.min() >= THRESHOLD
    for index in FOUND_WHOLE[name]:
        target = objects[index]
        renamed = [c for (p, c), o in RENAMED.items() if p == name and o == target.class_name]
        names = [target.class_name, *renamed]
        assert any(finds(found, Labelled(n, target.xyxy)) for n in names), (target, found)
    assert false_classes(name, found, objects, crowds) == []


def zoom_windows(size_wh: tuple[int, int], target: Labelled) -> list[tuple[float, ...]]:
    """The part of the photo each frame shows (16:9, photo pixels): from the widest view to
    one 1.3 times the target's size, centred on it as far as the photo allows."""
    width, height = size_wh
    aspect = FRAME_WH[0] / FRAME_WH[1]
    x1, y1, x2, y2 = target.xyxy
    full_w = min(width, height * aspect)
    final_w = min(1.3 * max(x2 - x1, (y2 - y1) * aspect), full_w)
    windows = []
    for index in range(ZOOM_FRAMES):
        t = index / (ZOOM_FRAMES - 1)
        view_w = full_w + (final_w - full_w) * t
        view_h = view_w / aspect
        centre_x = width / 2 + ((x1 + x2) / 2 - width / 2) * t
        centre_y = height / 2 + ((y1 + y2) / 2 - height / 2) * t
        left = min(max(centre_x - view_w / 2, 0.0), width - view_w)
        top = min(max(centre_y - view_h / 2, 0.0), height - view_h)
        windows.append((left, top, left + view_w, top + view_h))
    return windows


def in_frame(labelled: Labelled, window: tuple[float, ...]) -> Labelled:
    """A labelled box as the frame showing this window of the photo sees it, cut to it."""
    left, top, right, bottom = window
    scale_x, scale_y = FRAME_WH[0] / (right - left), FRAME_WH[1] / (bottom - top)
    x1, y1, x2, y2 = labelled.xyxy
    return Labelled(
        labelled.class_name,
        (
            (max(x1, left) - left) * scale_x,
            (max(y1, top) - top) * scale_y,
            (min(x2, right) - left) * scale_x,
            (min(y2, bottom) - top) * scale_y,
        ),
    )


def zoom_video(path: Path, image: Frame, windows: list[tuple[float, ...]]) -> list[Frame]:
    """The windows filmed as an MP4 (mp4v, 640 x 360), and its frames decoded again."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, FRAME_WH)
    for left, top, right, bottom in windows:
        scale_x, scale_y = FRAME_WH[0] / (right - left), FRAME_WH[1] / (bottom - top)
        matrix = np.array([[scale_x, 0, -left * scale_x], [0, scale_y, -top * scale_y]])
        writer.write(cv2.warpAffine(image, matrix, FRAME_WH, flags=cv2.INTER_AREA))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@dataclass(frozen=True)
class Zoom:
    """What the detector did on one zoom: the frames that found the object, and what was
    wrong in the frames that had something wrong (`false_classes`)."""

    found_in: int
    wrong_frames: list[list[str]]


@pytest.fixture(scope="module")
def zooms(detector: ObjectsDetect, tmp_path_factory: pytest.TempPathFactory) -> list[Zoom]:
    """Each of ZOOMS filmed, decoded and run through the detector, frame by frame."""
    done = []
    for name, index in ZOOMS:
        image = photo(name)
        objects, crowds = labels(name)
        windows = zoom_windows((image.shape[1], image.shape[0]), objects[index])
        frames = zoom_video(tmp_path_factory.mktemp("zoom") / f"{name}.mp4", image, windows)
        assert len(frames) == ZOOM_FRAMES
        found_in, wrong_frames = 0, []
        for frame, window in zip(frames, windows, strict=True):
            seen = [in_frame(o, window) for o in objects]
            found = detector.detect(frame)
            found_in += finds(found, seen[index])
            wrong = false_classes(name, found, seen, [in_frame(c, window) for c in crowds])
            wrong_frames += [wrong] if wrong else []
        done.append(Zoom(found_in, wrong_frames))
    return done


@pytest.mark.parametrize("zoom", range(len(ZOOMS)), ids=[f"{n}-{i}" for n, i in ZOOMS])
def test_a_slow_zoom_finds_the_object_in_4_of_5_frames(zooms: list[Zoom], zoom: int) -> None:
    """The issue's target, first half: an everyday object that fills a good part of the
    frame is found in at least 4 of 5 frames of a slow zoom over it (measured: in all)."""
    assert zooms[zoom].found_in >= 0.8 * ZOOM_FRAMES, zooms[zoom]


def test_slow_zooms_show_a_false_class_on_under_1_frame_in_10(zooms: list[Zoom]) -> None:
    """The target's second half, over the zooms' frames together (as the bench counts it
    over its set): a false class or a box on nothing in under 1 frame of 10. Measured: 3 of
    60, a `car` on the dustbin beside dog.jpg's pickup while it is in view."""
    wrong = [frame for zoom in zooms for frame in zoom.wrong_frames]
    assert len(wrong) < 0.1 * ZOOM_FRAMES * len(ZOOMS), wrong


def test_a_portrait_frame_finds_what_a_landscape_one_does(detector: ObjectsDetect) -> None:
    # person.jpg cut to the standing person and scaled to a phone's 360 x 640 portrait frame
    person = photo("person")[:, 100:338]
    frame = cv2.resize(person, (360, 640), interpolation=cv2.INTER_AREA)
    objects, _ = labels("person")
    scale = 360 / 238
    x1, y1, x2, y2 = objects[0].xyxy
    truth = Labelled("person", ((x1 - 100) * scale, y1 * scale, (x2 - 100) * scale, y2 * scale))
    found = detector.detect(frame)
    assert finds(found, truth), found
    assert found.xyxy[:, 2].max() <= 360 and found.xyxy[:, 3].max() <= 640


def test_nothing_in_a_blank_or_noise_frame(detector: ObjectsDetect) -> None:
    assert len(detector.detect(np.full((360, 640, 3), 128, np.uint8))) == 0
    noise = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert len(detector.detect(noise)) == 0


def test_confidence_threshold(detector: ObjectsDetect) -> None:
    image = photo("person")
    loose = ObjectsDetect(threads=2, confidence_threshold=0.2)
    loose.load()
    assert len(loose.detect(image)) > len(detector.detect(image))
    strict = ObjectsDetect(threads=2, confidence_threshold=0.5)
    strict.load()
    assert set(strict.detect(image).class_names) == {"person", "dog"}  # the sheep (0.42) goes


def test_per_class_nms_keeps_one_box_per_object(detector: ObjectsDetect) -> None:
    # dog.jpg's bicycle has two peaks (0.51 and 0.48) whose boxes overlap by IoU 0.96
    image = photo("dog")
    unsuppressed = ObjectsDetect(threads=2, iou_threshold=1.0)
    unsuppressed.load()
    assert unsuppressed.detect(image).class_names.count("bicycle") == 2
    kept = detector.detect(image)
    assert kept.class_names.count("bicycle") == 1
    for first in range(len(kept)):
        for second in range(first + 1, len(kept)):
            if kept.class_id[first] == kept.class_id[second]:
                iou = box_iou(kept.xyxy[first], kept.xyxy[[second]])[0]
                assert iou <= detector.iou_threshold
