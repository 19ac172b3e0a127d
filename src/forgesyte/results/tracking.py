"""Object tracks that hold when analysed frames are far apart: a motion model per track,
matching that knows the time between frames, and ByteTrack's two association passes.

Ideas taken (the code is written here, in numpy):

- SORT (Bewley et al., "Simple Online and Realtime Tracking", ICIP 2016): each track is a
  constant-velocity Kalman filter over its box; detections are assigned to the tracks'
  predicted boxes by an optimal assignment (`linear_assignment`, the shortest augmenting
  path method SciPy's `linear_sum_assignment` uses; SciPy is not a dependency).
- ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every
  Detection Box", ECCV 2022): the confident detections are matched first, to every live
  track; the tracks still unmatched then get a second chance against the low-score boxes
  (an object half hidden scores low), which never open a track; a track that finds
  nothing is kept, lost, for a while before it ends. (ByteTrack gives the second chance
  only to tracks seen in the previous frame; here that frame may be a second ago, and on
  made scenes with clutter the lost tracks' second chance scored better at 1, 2 and 10
  analysed frames a second.)

What differs, because a job may analyse one frame a second as well as every frame:

- The filter runs in continuous time: a prediction spans `dt`, the seconds since the
  track was last seen (taken from the frames' timestamps), and its uncertainty grows with
  it (a white-noise acceleration model). The state is the box centre, the logarithm of its
  width and height (sizes stay positive and change by ratios), and their rates per second.
- A detection is matched by its Mahalanobis distance to the track's predicted box, gated
  at the 95 % chi-square quantile of 4 degrees of freedom. IoU with the last box, what
  a greedy IoU tracker matches on (the timeline's before this one; bench row t keeps it
  as its baseline), is zero as soon as an object moves more
  than its own width between two analysed frames: a walker sampled twice a second does.
  A pair that overlaps by MIN_IOU may match whatever its distance (a box that suddenly
  shrinks, half hidden, stays with its track).
- A lost track is kept LOST_TRACK_S seconds, whatever the sampling.

Matching stays within a class. Same input, same tracks and ids (no randomness; ties go to
the lower index). Memory holds the live tracks, never past frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from forgesyte.plugins.values import CONFIDENCE_DIGITS

FloatArray = npt.NDArray[np.float64]
IdArray = npt.NDArray[np.int64]

LOST_TRACK_S = 2.0  # seconds a track that finds no detection is kept before it ends
POSITION_STD = 0.08  # a detection's centre error: box widths (x) and heights (y)
LOG_SIZE_STD = 0.15  # a detection's size error, as a log ratio (about 15 %)
START_SPEED_STD = (
    1.5  # a new track's unknown speed: box sizes per second (about 1.6 m/s for a person)
)
START_GROWTH_STD = 0.5  # a new track's unknown rate of growth: log ratio per second
ACCELERATION_STD = 0.5  # speed change: box sizes per second, per root second
GROWTH_CHANGE_STD = 0.3  # growth-rate change: log ratio per second, per root second
GATE = (
    9.4877  # chi-square 95 % quantile, 4 degrees of freedom (as DeepSORT gates): squared distance
)
MIN_IOU = 0.3  # box overlap with the predicted box at which a pair matches anyway
MIN_SIDE_PX = 1.0  # box sides are measured at least this long (log of a flat box)
UNMATCHED = 0  # the track id `update` gives a detection that belongs to no track
_INFEASIBLE = 1e9  # the cost of a pair that may not match (larger than any sum of costs)

_MEASURED = np.hstack([np.eye(4), np.zeros((4, 4))])  # the state's measured part


def linear_assignment(cost: FloatArray) -> list[tuple[int, int]]:
    """Pairs (row, column) minimising the summed cost, each row and column at most once.

    Every row is paired when there are no more rows than columns (else every column).
    Jonker-Volgenant shortest augmenting paths as in Crouse, "On implementing 2D
    rectangular assignment algorithms" (2016), which SciPy implements; pairs sorted by row.
    """
    transposed = cost.shape[0] > cost.shape[1]
    matrix = np.asarray(cost.T if transposed else cost, dtype=np.float64)
    rows, columns = matrix.shape
    row_duals, column_duals = np.zeros(rows), np.zeros(columns)
    row_of_column = np.full(columns, -1, dtype=np.int64)
    column_of_row = np.full(rows, -1, dtype=np.int64)
    for start in range(rows):
        shortest = np.full(columns, np.inf)
        through = np.full(columns, -1, dtype=np.int64)  # the row each column is reached from
        done_columns = np.zeros(columns, dtype=bool)
        done_rows: list[int] = []
        row, reached, sink = start, 0.0, -1
        while sink < 0:
            done_rows.append(row)
            reduced = reached + matrix[row] - row_duals[row] - column_duals
            better = ~done_columns & (reduced < shortest)
            shortest[better], through[better] = reduced[better], row
            column = int(np.argmin(np.where(done_columns, np.inf, shortest)))
            reached = float(shortest[column])
            done_columns[column] = True
            if row_of_column[column] < 0:
                sink = column
            else:
                row = int(row_of_column[column])
        row_duals[start] += reached
        for other in done_rows[1:]:
            row_duals[other] += reached - shortest[column_of_row[other]]
        column_duals[done_columns] -= reached - shortest[done_columns]
        column = sink
        while True:  # flip the path's pairs back to the start row
            row = int(through[column])
            row_of_column[column], column_of_row[row], column = row, column, column_of_row[row]
            if row == start:
                break
    pairs = [
        (int(column_of_row[r]), r) if transposed else (r, int(column_of_row[r]))
        for r in range(rows)
    ]
    return sorted(pairs)


def pairwise_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of each of N xyxy boxes with each of M: N x M."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((bottom_right - top_left).clip(min=0), axis=2)
    area_a = np.prod((a[:, 2:] - a[:, :2]).clip(min=0), axis=1)
    area_b = np.prod((b[:, 2:] - b[:, :2]).clip(min=0), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


@dataclass(frozen=True)
class FrameDetections:
    """One analysed frame's detections as columns: ``xyxy`` (N x 4, frame pixels),
    ``confidence`` (N), ``class_names`` and ``low`` (N): True for a box under the
    pipeline's threshold, used only to continue a track (ByteTrack's second pass)."""

    xyxy: FloatArray
    confidence: FloatArray
    class_names: tuple[str, ...]
    low: npt.NDArray[np.bool_]

    @classmethod
    def of(
        cls,
        xyxy: npt.ArrayLike,
        confidence: npt.ArrayLike,
        class_names: Sequence[str],
        low: npt.ArrayLike | None = None,
    ) -> FrameDetections:
        """Detections from array-likes; ``low`` defaults to none low. ValueError on shapes
        that disagree."""
        count = len(class_names)
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(confidence, dtype=np.float64).reshape(-1)
        flags = np.zeros(count, bool) if low is None else np.asarray(low, bool).reshape(-1)
        if len(boxes) != count or len(scores) != count or len(flags) != count:
            raise ValueError(
                f"{count} class names but {len(boxes)} boxes, {len(scores)} confidences "
                f"and {len(flags)} low flags"
            )
        return cls(boxes, scores, tuple(class_names), flags)

    @classmethod
    def from_json(cls, items: Sequence[Mapping[str, Any]]) -> FrameDetections:
        """From ``detections`` JSON items (``xyxy``, ``confidence``, ``class_name``, and
        ``low`` when the detector passes on boxes under its threshold)."""
        return cls.of(
            [item["xyxy"] for item in items],
            [float(item.get("confidence") or 0.0) for item in items],
            [str(item["class_name"]) for item in items],
            [bool(item.get("low")) for item in items],
        )

    def __len__(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class TrackSummary:
    """A finished track, as the timeline shows it: its span, frames seen and best box."""

    track_id: int
    class_name: str
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    frames: int  # analysed frames with a detection of it
    confidence: float  # the best one
    box: tuple[float, float, float, float]  # at the best confidence

    def to_json(self) -> dict[str, Any]:
        """The timeline's object entry: these fields, the confidence rounded as stored."""
        rounded = round(self.confidence, CONFIDENCE_DIGITS)
        return {**asdict(self), "confidence": rounded, "box": list(self.box)}


def _measurement(box: FloatArray) -> FloatArray:
    """centre x, centre y, log width, log height of an xyxy box."""
    sides = np.maximum(box[2:] - box[:2], MIN_SIDE_PX)
    return np.concatenate([(box[:2] + box[2:]) / 2, np.log(sides)])


def _scales(mean: FloatArray) -> FloatArray:
    """What each measured quantity's errors scale with: the box's size (the geometric mean
    of its sides) for both centre coordinates, 1 for the log sides."""
    size = float(np.exp((mean[2] + mean[3]) / 2))
    return np.array([size, size, 1.0, 1.0])


@dataclass
class _Track:
    """A live track: its filter state at updated_s, and what the summary needs."""

    track_id: int
    class_name: str
    mean: FloatArray  # x, y, log w, log h, then their rates per second
    covariance: FloatArray
    updated_s: float  # the time of the last sighting
    first_frame: int
    first_s: float
    last_frame: int
    frames: int
    confidence: float
    box: tuple[float, float, float, float]
    predicted: tuple[FloatArray, FloatArray] = field(init=False)

    def predict(self, timestamp_s: float) -> None:
        """Set `predicted` to the state's mean and covariance at timestamp_s."""
        dt = max(timestamp_s - self.updated_s, 0.0)
        motion = np.eye(8)
        motion[:4, 4:] = np.eye(4) * dt
        noise = (
            np.array([ACCELERATION_STD] * 2 + [GROWTH_CHANGE_STD] * 2) * _scales(self.mean)
        ) ** 2
        white = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        self.predicted = (
            motion @ self.mean,
            motion @ self.covariance @ motion.T + np.kron(white, np.diag(noise)),
        )

    def innovation(self) -> tuple[FloatArray, FloatArray]:
        """The predicted measurement and its covariance (detection error included)."""
        mean, covariance = self.predicted
        error = np.array([POSITION_STD] * 2 + [LOG_SIZE_STD] * 2) * _scales(mean)
        return mean[:4], covariance[:4, :4] + np.diag(error**2)

    def predicted_box(self) -> FloatArray:
        mean = self.predicted[0]
        half = np.exp(mean[2:4]) / 2
        return np.concatenate([mean[:2] - half, mean[:2] + half])

    def correct(self, measured: FloatArray, timestamp_s: float) -> None:
        """The Kalman update of the predicted state with one measurement."""
        mean, covariance = self.predicted
        expected, spread = self.innovation()
        gain = np.linalg.solve(spread, (covariance @ _MEASURED.T).T).T
        self.mean = mean + gain @ (measured - expected)
        updated = (np.eye(8) - gain @ _MEASURED) @ covariance
        self.covariance = (updated + updated.T) / 2
        self.updated_s = timestamp_s

    def summary(self) -> TrackSummary:
        return TrackSummary(
            self.track_id,
            self.class_name,
            self.first_s,
            self.updated_s,
            self.first_frame,
            self.last_frame,
            self.frames,
            self.confidence,
            self.box,
        )


class MotionTracker:
    """Follows objects across analysed frames; see the module's docstring for how.

    Feed each analysed frame in order with `update`; finished tracks come out of
    `take_finished` (a track ends LOST_TRACK_S seconds after it was last seen) and, at
    the end of the video, `finish`. Track ids count from 1 in order of opening.
    """

    def __init__(self, lost_track_s: float = LOST_TRACK_S) -> None:
        self.lost_track_s = lost_track_s
        self._live: list[_Track] = []
        self._finished: list[TrackSummary] = []
        self._next_id = 1
        self._last_s = -np.inf

    @property
    def live_tracks(self) -> int:
        """How many tracks are live (seen, or lost for less than lost_track_s)."""
        return len(self._live)

    def update(self, frame_index: int, timestamp_s: float, detections: FrameDetections) -> IdArray:
        """Feed one analysed frame; the track id of each detection (UNMATCHED for a low
        box that continued no track)."""
        if timestamp_s < self._last_s:
            raise ValueError(f"frame at {timestamp_s} s fed after one at {self._last_s} s")
        self._last_s = timestamp_s
        self._end_lost(timestamp_s)
        for track in self._live:
            track.predict(timestamp_s)
        ids = np.full(len(detections), UNMATCHED, dtype=np.int64)
        high = [d for d in range(len(detections)) if not detections.low[d]]
        low = [d for d in range(len(detections)) if detections.low[d]]
        matched = self._associate(list(range(len(self._live))), high, detections)
        unmatched = [t for t in range(len(self._live)) if t not in matched]
        matched.update(self._associate(unmatched, low, detections))
        for t, d in matched.items():
            self._extend(self._live[t], frame_index, timestamp_s, detections, d)
            ids[d] = self._live[t].track_id
        for d in high:
            if ids[d] == UNMATCHED:
                ids[d] = self._open(frame_index, timestamp_s, detections, d)
        return ids

    def take_finished(self) -> list[TrackSummary]:
        """The tracks that ended since the last call, in order of ending (then of id)."""
        finished, self._finished = self._finished, []
        return finished

    def finish(self) -> list[TrackSummary]:
        """End every live track (the video is over); all tracks not yet taken."""
        self._end_lost(np.inf)
        return self.take_finished()

    def _associate(
        self, tracks: list[int], candidates: list[int], detections: FrameDetections
    ) -> dict[int, int]:
        """Tracks (indices into _live) paired with detections, class by class."""
        matched: dict[int, int] = {}
        if not tracks or not candidates:
            return matched
        for name in sorted({self._live[t].class_name for t in tracks}):
            rows = [t for t in tracks if self._live[t].class_name == name]
            columns = [d for d in candidates if detections.class_names[d] == name]
            if not columns:
                continue
            cost = self._costs([self._live[t] for t in rows], detections.xyxy[columns])
            for r, c in linear_assignment(cost):
                if cost[r, c] < _INFEASIBLE:
                    matched[rows[r]] = columns[c]
        return matched

    @staticmethod
    def _costs(tracks: list[_Track], boxes: FloatArray) -> FloatArray:
        """Pair costs (tracks x boxes): the negative log-likelihood of the box under the
        track's prediction (sizes in box units, so no box size is favoured), _INFEASIBLE
        outside the gate. The log-determinant term is what lets a track seen a moment ago
        win a box over one lost for seconds, whose wide spread would otherwise make every
        box look near."""
        measured = np.array([_measurement(box) for box in boxes])
        distances = np.empty((len(tracks), len(boxes)))
        spreads = np.empty(len(tracks))
        for row, track in enumerate(tracks):
            expected, spread = track.innovation()
            offsets = measured - expected
            distances[row] = np.einsum("ij,ij->i", offsets @ np.linalg.inv(spread), offsets)
            scales = _scales(expected)
            spreads[row] = np.linalg.slogdet(spread / np.outer(scales, scales))[1]
        overlap = pairwise_iou(np.array([t.predicted_box() for t in tracks]), boxes)
        allowed = (distances <= GATE) | (overlap >= MIN_IOU)
        cost = np.minimum(distances, GATE) + spreads[:, None]
        return np.where(allowed, cost, _INFEASIBLE)

    def _extend(
        self,
        track: _Track,
        frame_index: int,
        timestamp_s: float,
        detections: FrameDetections,
        d: int,
    ) -> None:
        track.correct(_measurement(detections.xyxy[d]), timestamp_s)
        track.last_frame, track.frames = frame_index, track.frames + 1
        if detections.confidence[d] > track.confidence:
            track.confidence = float(detections.confidence[d])
            track.box = _box(detections.xyxy[d])

    def _open(
        self, frame_index: int, timestamp_s: float, detections: FrameDetections, d: int
    ) -> int:
        measured = _measurement(detections.xyxy[d])
        scales = _scales(measured)
        spread = np.concatenate(
            [
                np.array([POSITION_STD] * 2 + [LOG_SIZE_STD] * 2) * scales,
                np.array([START_SPEED_STD] * 2 + [START_GROWTH_STD] * 2) * scales,
            ]
        )
        track = _Track(
            track_id=self._next_id,
            class_name=detections.class_names[d],
            mean=np.concatenate([measured, np.zeros(4)]),
            covariance=np.diag(spread**2),
            updated_s=timestamp_s,
            first_frame=frame_index,
            first_s=timestamp_s,
            last_frame=frame_index,
            frames=1,
            confidence=float(detections.confidence[d]),
            box=_box(detections.xyxy[d]),
        )
        self._live.append(track)
        self._next_id += 1
        return track.track_id

    def _end_lost(self, timestamp_s: float) -> None:
        """Finish the tracks not seen for more than lost_track_s before timestamp_s.

        (ByteTrack also drops a track seen once and not in the next frame. Tried here, it
        split more objects whose second sighting was missed than it saved from a false
        alarm's track taking the next object that came near.)"""
        still: list[_Track] = []
        for track in self._live:
            if timestamp_s - track.updated_s > self.lost_track_s:
                self._finished.append(track.summary())
            else:
                still.append(track)
        self._live = still


def _box(xyxy: FloatArray) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return (x1, y1, x2, y2)
