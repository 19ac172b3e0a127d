"""Made videos with known shots: photos (Debian's darknet photos) filmed still, drifting,
panning fast or zooming, with flashes and objects passing, joined by hard cuts, fades
through black and dissolves; and the precision and recall of found cuts.

Shared by tests/video/test_shots.py and the bench (bench/bench_shots.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from forgesyte.video.shots import Shot

DARKNET_PHOTOS = Path("/usr/share/darknet/data")
FPS = 30
SIZE_WH = (320, 180)
CROSSING_S = 1.0  # seconds a disc takes to cross the frame
TOLERANCE = 1  # frames a found cut may be off (outside a transition's frames)


@dataclass(frozen=True)
class Take:
    """A shot: a photo filmed for `seconds` with a camera motion ("still"; "drift": a few
    pixels a second; "pan": a quarter of the photo's width, about two fifths of the
    frame, over 2 s and back; "zoom": in and out by 1.6 x over 3 s), and what happens in
    it: a white flash of `flash_frames` frames at `flash_s`, a dark disc half the frame's
    height crossing it, edge to edge in CROSSING_S, from `crossing_s`."""

    photo: str
    seconds: float
    motion: str = "drift"
    flash_s: float | None = None
    flash_frames: int = 2
    crossing_s: float | None = None

    def frame(self, t: float, width: int, height: int) -> np.ndarray:
        """The picture at t seconds into the take (t may run past its end)."""
        photo = _photo(self.photo)
        ph, pw = photo.shape[:2]
        zoom = 1.0
        x, y = 0.1 + 0.01 * t, 0.1  # the crop's top-left, as a share of the photo
        if self.motion == "pan":
            x = 0.05 + 0.25 * (1 - np.cos(np.pi * t / 2)) / 2
        elif self.motion == "zoom":
            zoom = 1.0 + 0.6 * (1 - np.cos(np.pi * t / 3)) / 2
        elif self.motion == "still":
            x = 0.1
        crop_w = pw * 0.6 / zoom
        crop_h = crop_w * height / width
        left = x * pw + (pw * 0.6 - crop_w) / 2
        top = y * ph + (pw * 0.6 * height / width - crop_h) / 2
        scale = width / crop_w
        matrix = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]])
        image = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_AREA)
        if self.crossing_s is not None and 0 <= t - self.crossing_s <= CROSSING_S:
            radius = height // 4
            cx = round((width + 2 * radius) * (t - self.crossing_s) / CROSSING_S) - radius
            cv2.circle(image, (cx, height // 2), radius, (40, 30, 20), -1)
        if self.flash_s is not None:
            frame = round((t - self.flash_s) * FPS)
            if 0 <= frame < self.flash_frames:
                image = np.full_like(image, 250)
        return image


@dataclass(frozen=True)
class Join:
    """How two takes are joined: "cut", "fade" (out to black and in, `seconds` in all)
    or "dissolve" (one blended into the other over `seconds`)."""

    kind: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Edit:
    """Takes joined in order: takes[i] and takes[i + 1] by joins[i]."""

    takes: tuple[Take, ...]
    joins: tuple[Join, ...]

    def frames(self, width: int = SIZE_WH[0], height: int = SIZE_WH[1]) -> Iterator[np.ndarray]:
        """Every frame of the edit, BGR."""
        for number, take in enumerate(self.takes):
            for i in range(round(take.seconds * FPS)):
                yield take.frame(i / FPS, width, height)
            if number < len(self.joins):
                yield from self._join(number, width, height)

    def _join(self, number: int, width: int, height: int) -> Iterator[np.ndarray]:
        join, old, new = self.joins[number], self.takes[number], self.takes[number + 1]
        steps = round(join.seconds * FPS)
        for i in range(steps):
            share = (i + 1) / (steps + 1)
            before = old.frame(old.seconds + i / FPS, width, height).astype(np.float64)
            after = new.frame(0.0, width, height).astype(np.float64)
            if join.kind == "dissolve":
                picture = before * (1 - share) + after * share
            else:  # fade: out to black, then in
                picture = before * max(0.0, 1 - 2 * share) + after * max(0.0, 2 * share - 1)
            yield picture.round().astype(np.uint8)

    def cuts(self) -> list[tuple[int, int]]:
        """Where each join puts the new shot's first frame: (earliest, latest) frame,
        the transition's frames and TOLERANCE either side."""
        ranges, position = [], 0
        for take, join in zip(self.takes, self.joins, strict=False):
            position += round(take.seconds * FPS)
            steps = round(join.seconds * FPS)
            ranges.append((position - TOLERANCE, position + steps + TOLERANCE))
            position += steps
        return ranges

    def write(self, path: Path) -> Path:
        """The edit as an mp4v MP4 at FPS."""
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE_WH)
        try:
            for frame in self.frames():
                writer.write(frame)
        finally:
            writer.release()
        return path


@functools.cache
def _photo(name: str) -> np.ndarray:
    photo = cv2.imread(str(DARKNET_PHOTOS / name))
    if photo is None:
        raise FileNotFoundError(f"darknet's {name} is missing: scripts/install_services.sh")
    return photo


CUTS = Edit(
    (
        Take("dog.jpg", 1.5, crossing_s=0.4),
        Take("horses.jpg", 1.5),
        Take("giraffe.jpg", 1.5, "still"),
        Take("person.jpg", 1.5),
        Take("eagle.jpg", 1.0),
    ),
    (Join("cut"), Join("cut"), Join("cut"), Join("cut")),
)
"""Hard cuts between photos, one with an object crossing."""

TRANSITIONS = Edit(
    (
        Take("kite.jpg", 2.5),
        Take("dog.jpg", 3.0),
        Take("person.jpg", 3.0),
        Take("horses.jpg", 2.5),
        Take("scream.jpg", 1.5),
    ),
    (Join("fade", 1.0), Join("dissolve", 1.0), Join("dissolve", 0.5), Join("fade", 0.4)),
)
"""Fades through black and dissolves, half a second to a second long."""

NO_CUTS = Edit(
    (
        Take("kite.jpg", 2.5, "pan"),
        Take("horses.jpg", 3.0, "zoom", flash_s=1.0),
        Take("dog.jpg", 2.0, crossing_s=0.5, flash_s=1.2, flash_frames=4),
    ),
    (Join("dissolve", 0.8), Join("cut")),
)
"""A fast pan, a zoom, flashes and an object passing: no cut but the two joins."""

EDITS = {"cuts": CUTS, "transitions": TRANSITIONS, "hard cases": NO_CUTS}


@dataclass(frozen=True)
class CutScores:
    """Found cuts against an edit's: true positives, false ones, missed ones."""

    found: int
    true: int
    missed: int

    @property
    def precision(self) -> float:
        return self.true / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.true / (self.true + self.missed) if self.true + self.missed else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    def __add__(self, other: CutScores) -> CutScores:
        return CutScores(
            self.found + other.found, self.true + other.true, self.missed + other.missed
        )


def score_cuts(shots: list[Shot], expected: list[tuple[int, int]]) -> CutScores:
    """Each found cut (a shot's first frame but the first's) matches at most one expected
    cut whose (earliest, latest) range holds it."""
    found = [shot.first_frame for shot in shots[1:]]
    matched: set[int] = set()
    for frame in found:
        for number, (earliest, latest) in enumerate(expected):
            if number not in matched and earliest <= frame <= latest:
                matched.add(number)
                break
    return CutScores(len(found), len(matched), len(expected) - len(matched))


PHOTOS = (
    "dog.jpg",
    "person.jpg",
    "horses.jpg",
    "giraffe.jpg",
    "kite.jpg",
    "eagle.jpg",
    "scream.jpg",
)


def random_edit(seed: int, takes: int = 8) -> Edit:
    """A seeded edit of `takes` takes of 1.5-4 s (random photo, never the one before;
    random motion, flashes and crossings) joined by cuts (half of them), dissolves and
    fades of 0.3-1.5 s."""
    rng = np.random.default_rng(seed)
    chosen: list[Take] = []
    for _ in range(takes):
        seconds = float(rng.uniform(1.5, 4.0))
        others = [photo for photo in PHOTOS if not chosen or photo != chosen[-1].photo]
        chosen.append(
            Take(
                others[int(rng.integers(len(others)))],
                seconds,
                ("still", "drift", "pan", "zoom")[int(rng.integers(4))],
                flash_s=float(rng.uniform(0.5, seconds - 0.5)) if rng.random() < 0.3 else None,
                flash_frames=int(rng.integers(1, 5)),
                crossing_s=float(rng.uniform(0, seconds - 0.5)) if rng.random() < 0.3 else None,
            )
        )
    joins = []
    for _ in range(takes - 1):
        kind = ("cut", "cut", "dissolve", "fade")[int(rng.integers(4))]
        joins.append(Join(kind, 0.0 if kind == "cut" else float(rng.uniform(0.3, 1.5))))
    return Edit(tuple(chosen), tuple(joins))
