"""What the server answers, as frozen values: a job's status, a timeline, list and search entries.

Each value is built from the server's JSON by ``from_json``, which keeps the fields it
knows and ignores the others: a newer server may add fields without breaking an older
client. Fields the API added later (``pipeline_id``, ``filename``, ``playable``, a
timeline's ``shots``) are optional, so an older server's answer reads too. ``raw`` keeps
the answer as the server sent it, for printing it whole (``--json``) or reading a field
this client does not know yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

from forgesyte.client.errors import ApiError

FINISHED_STATUSES = frozenset({"completed", "failed", "cancelled"})  # a job never leaves these

V = TypeVar("V")


def _frozen(value: Any) -> Any:
    """Lists as tuples, all the way down (a box's corners), so the value stays hashable."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


def build(cls: type[V], data: Any, **converted: Any) -> V:
    """An instance of the dataclass cls from the JSON object data.

    Keeps the fields cls declares (``converted`` gives some already converted), ignores
    the others, and puts data itself in ``raw`` when cls has that field. Raises ApiError
    when data is not an object or lacks a field cls requires: the answer is not what this
    API sends.
    """
    if not isinstance(data, Mapping):
        raise ApiError(None, f"expected a JSON object from the server, got {type(data).__name__}")
    declared = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {name: _frozen(data[name]) for name in declared if name in data and name != "raw"}
    values.update(converted)
    if "raw" in declared:
        values["raw"] = data
    missing = [
        name
        for name, spec in declared.items()
        if name not in values
        and spec.default is dataclasses.MISSING
        and spec.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ApiError(None, f"the server's answer lacks {', '.join(missing)}: {dict(data)}")
    return cls(**values)


@dataclass(frozen=True, kw_only=True)
class JobStatus:
    """A job's state and progress (``GET /v1/video/status/{job_id}``).

    ``status`` is a string (pending, running, completed, failed, cancelled), not an enum,
    so a status a newer server adds reads as itself instead of breaking the client.
    """

    job_id: str
    status: str
    progress: float  # percent of the frames the job will analyse, 0-100
    created_at: datetime
    updated_at: datetime
    error_message: str | None = None  # why a failed job failed
    pipeline_id: str | None = None
    filename: str | None = None  # the uploaded file's base name
    playable: bool = False  # the server has a video a browser can play for this job
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Whether the job has ended (completed, failed or cancelled): it changes no more."""
        return self.status in FINISHED_STATUSES

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """The status from the server's JSON object."""
        return build(cls, data, **_times(data))


@dataclass(frozen=True, kw_only=True)
class JobListEntry(JobStatus):
    """A job in the job list (``GET /v1/video/jobs``): its status object and its pipeline."""

    pipeline_id: str = field()  # required here (field(): no default inherited from JobStatus)


def _times(
    data: Any, names: tuple[str, ...] = ("created_at", "updated_at")
) -> dict[str, datetime | None]:
    """These timestamps as aware datetimes (the server writes ISO 8601 UTC); null stays None."""
    if not isinstance(data, Mapping):
        return {}
    try:
        return {
            name: None if data[name] is None else datetime.fromisoformat(data[name])
            for name in names
            if name in data
        }
    except (TypeError, ValueError) as exc:
        raise ApiError(None, f"the server's answer has a bad timestamp: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class Span:
    """Where something happened in the video: seconds and analysed frame indices."""

    start_s: float
    end_s: float
    first_frame: int
    last_frame: int


@dataclass(frozen=True, kw_only=True)
class TextSegment(Span):
    """One line of text on screen over consecutive analysed frames."""

    text: str
    frames: int  # analysed frames that saw the line
    confidence: float  # of the best reading
    box: tuple[tuple[float, float], ...]  # the best reading's four corners, pixels


@dataclass(frozen=True, kw_only=True)
class ObjectTrack(Span):
    """One object followed across analysed frames."""

    track_id: int
    class_name: str
    frames: int
    confidence: float  # of the best detection
    box: tuple[float, ...]  # xyxy at the best confidence, pixels


@dataclass(frozen=True, kw_only=True)
class Shot(Span):
    """One shot of the video between two cuts (jobs submitted with shot detection)."""

    index: int


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """What happened in a job's video (``GET /v1/video/timeline/{job_id}``), each part sorted
    by ``start_s``; ``shots`` is empty unless the job detected them."""

    job_id: str
    text: tuple[TextSegment, ...] = ()
    objects: tuple[ObjectTrack, ...] = ()
    shots: tuple[Shot, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Timeline:
        """The timeline from the server's JSON object."""
        parts: dict[str, Any] = {}
        if isinstance(data, Mapping):
            for name, kind in (("text", TextSegment), ("objects", ObjectTrack), ("shots", Shot)):
                parts[name] = tuple(build(kind, item) for item in data.get(name) or ())
        return build(cls, data, **parts)


@dataclass(frozen=True, kw_only=True)
class FrameEntry:
    """One analysed frame of a job's results: each output node's output, by node id."""

    frame_index: int
    timestamp_s: float
    result: Mapping[str, Any]
    reused_from: int | None = None  # skip_unchanged: the frame whose result this reuses

    @classmethod
    def from_json(cls, data: Any) -> FrameEntry:
        """The entry from the server's JSON object (its result as the server sent it)."""
        return build(cls, data)


@dataclass(frozen=True, kw_only=True)
class SearchMatch:
    """A moment that matched a search (``GET /v1/search``): a text segment or an object track.

    ``text`` is set for ``kind="text"`` matches, ``class_name`` for ``kind="object"``.
    """

    job_id: str
    kind: str
    start_s: float
    end_s: float
    confidence: float
    score: float  # in (0, 1], 1 for an exact match
    filename: str | None = None
    text: str | None = None
    class_name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> SearchMatch:
        """The match from the server's JSON object."""
        return build(cls, data)


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A key as the server lists it (``GET /v1/keys``): never its text.

    ``role`` is admin, user or viewer; ``last_used_at`` is to the minute, None if unused.
    """

    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> ApiKey:
        """The key from the server's JSON object."""
        return build(cls, data, **_times(data, ("created_at", "last_used_at")))


@dataclass(frozen=True, kw_only=True)
class NewApiKey:
    """A key just made (``POST /v1/keys``), with its text: the server shows it this once.

    ``key`` is left out of repr, so printing the value does not print the key.
    """

    name: str
    role: str
    key: str = field(repr=False)
    created_at: datetime
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> NewApiKey:
        """The key from the server's JSON object."""
        return build(cls, data, **_times(data, ("created_at",)))


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who a key acts as (``GET /v1/keys/me``): its name (the owner of what it submits)
    and its role."""

    name: str
    role: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> Caller:
        """The caller from the server's JSON object."""
        return build(cls, data)


@dataclass(frozen=True, kw_only=True)
class SourceUrl:
    """A link to one job's video that needs no key (``GET /v1/video/source-url``), for a
    ``<video>`` element or a download; it stops working at ``expires_at``."""

    url: str
    expires_at: datetime
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> SourceUrl:
        """The link from the server's JSON object."""
        return build(cls, data, **_times(data, ("expires_at",)))


@dataclass(frozen=True, kw_only=True)
class FrameTrackIds:
    """The timeline's track id of each detection of one analysed frame
    (``GET /v1/video/track-ids``): ``track_ids[i]`` is the frame's i-th detection's."""

    frame_index: int
    track_ids: tuple[int | None, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any) -> FrameTrackIds:
        """The frame's track ids from the server's JSON object."""
        return build(cls, data)


@dataclass(frozen=True, kw_only=True)
class Page(Generic[V]):
    """One page of a paged answer: its items and where the next page starts.

    ``next`` is what to pass back for the next page (a cursor, or a results offset);
    None on the last page. ``raw`` is the page as the server sent it.
    """

    items: tuple[V, ...]
    next: str | int | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class ResultsPage(Page[FrameEntry]):
    """A page of a completed job's results, with what the results document says of the job."""

    pipeline_id: str
    frames_analysed: int  # all analysed frames, whatever the page
