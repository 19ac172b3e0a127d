"""What the routes need, wired once per process, and what the API keeps per process: the
status cache, the slots that bound uploads and previews, the signer of video links."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from forgesyte.api.auth import KeyLookups
from forgesyte.api.health import HealthProbe
from forgesyte.api.source_tokens import SourceTokens
from forgesyte.api.status_cache import StatusCache
from forgesyte.jobs.store import JobStore
from forgesyte.pipelines.catalog import PipelineCatalog
from forgesyte.plugins.registry import PluginRegistry
from forgesyte.results.preview import PreviewRenderer
from forgesyte.settings import Settings
from forgesyte.storage.base import Storage
from forgesyte.submission.errors import RetryLater
from forgesyte.submission.service import SubmitService

UPLOAD_RETRY_AFTER_S = 5  # what a submit refused for want of an upload slot is told to wait
UPLOADS_BUSY = f"uploads are already under way; retry in {UPLOAD_RETRY_AFTER_S} s"
# Each preview is drawn by a child process that decodes up to one group of pictures (and on
# S3 the video is copied first): at most this many at once per API process, the rest 429.
MAX_CONCURRENT_PREVIEWS = 2
PREVIEW_RETRY_AFTER_S = 1
PREVIEWS_BUSY = "previews are being drawn; try again shortly"


@dataclass
class Slots:
    """At most `limit` holders at once; one more is refused at once (RetryLater, saying
    "<limit> <busy>"), not queued. Taken and given back only on the event loop, so a
    plain counter is enough."""

    limit: int
    busy: str
    retry_after_s: int
    in_use: int = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the duration of the context; RetryLater when every slot is taken."""
        if self.in_use >= self.limit:
            raise RetryLater(f"{self.limit} {self.busy}", self.retry_after_s)
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


@dataclass
class AppContext:
    """Settings, the job store, storage and the pipeline catalog, and what the API builds
    from them once: the status cache, the upload and preview slots, the submit service,
    the health checks, the signer of video links, the cached key lookups (`keys`).
    `previews` draws preview frames in a child process (wired by forgesyte.runtime; None:
    this process draws none, and the preview route answers 503)."""

    settings: Settings
    store: JobStore
    storage: Storage
    registry: PluginRegistry
    catalog: PipelineCatalog
    child_memory_mb: int | None = None  # each analysis child's memory cap (None: no workers)
    previews: PreviewRenderer | None = None
    status_cache: StatusCache = field(init=False, repr=False)
    upload_slots: Slots = field(init=False, repr=False)
    preview_slots: Slots = field(init=False, repr=False)
    submissions: SubmitService = field(init=False, repr=False)
    health: HealthProbe = field(init=False, repr=False)
    source_tokens: SourceTokens = field(init=False, repr=False)
    keys: KeyLookups = field(init=False, repr=False)

    def __post_init__(self) -> None:
        uploads = self.settings.max_concurrent_uploads
        self.status_cache = StatusCache(self.settings.status_cache_s)
        self.upload_slots = Slots(uploads, UPLOADS_BUSY, UPLOAD_RETRY_AFTER_S)
        self.preview_slots = Slots(MAX_CONCURRENT_PREVIEWS, PREVIEWS_BUSY, PREVIEW_RETRY_AFTER_S)
        self.submissions = SubmitService(
            self.store, self.storage, self.catalog, self.settings, self.upload_slots.hold
        )
        self.health = HealthProbe(self.store, self.storage, self.child_memory_mb)
        self.source_tokens = SourceTokens.for_settings(self.settings)
        self.keys = KeyLookups(self.store, self.settings.api_key)
