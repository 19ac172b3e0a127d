"""Submitting a video: check the request, store the upload, record the job.

Free of HTTP and of SQL: the API hands over plain values (a SubmitRequest) and a `fill`
coroutine that writes the file into a storage writer; a refusal is a SubmissionRefused
(errors.py), which api/errors.py turns into a status. The bytes are committed only once
every field passed, and the job row is recorded after the commit; on any failure the
video is removed. A taken Idempotency-Key is answered with the job that holds it, when
that job asked for the same analysis.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple

from anyio.to_thread import run_sync

from forgesyte.jobs.keys import ADMIN_NAME
from forgesyte.jobs.options import InvalidOptions, JobOptions
from forgesyte.jobs.store import DuplicateIdempotencyKeyError, JobRecord, JobRegistry, NewJob
from forgesyte.pipelines.catalog import DEFAULT_PIPELINE_ID, PipelineCatalog
from forgesyte.settings import Settings
from forgesyte.storage.base import Storage, StorageError, StorageWriter, video_key
from forgesyte.submission.errors import (
    CouldNotRecord,
    IdempotencyConflict,
    InvalidSubmission,
    NotEnoughSpace,
    RetryLater,
    StorageRefused,
)
from forgesyte.webhooks.guard import UnsafeCallbackUrl, check_callback_url

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 256
PENDING_RETRY_AFTER_S = 30  # what a submit past its key's pending cap is told to wait
PIPELINE_FIELD = "pipeline_id"
CALLBACK_FIELD = "callback_url"  # where to POST a signed event when the job ends
# every field a submit reads besides the file: the pipeline, each option, the callback URL
SUBMIT_FIELDS = (PIPELINE_FIELD, *JobOptions.model_fields, CALLBACK_FIELD)


@dataclass(frozen=True)
class SubmitRequest:
    """A submit's plain values: the fields known before the upload (they win over the
    upload's own), and the Idempotency-Key (InvalidSubmission unless 1-256 characters)."""

    fields: Mapping[str, str]
    idempotency_key: str | None = None
    owner: str = ADMIN_NAME  # the name of the key that submits (jobs/keys.py)
    pending_cap: int | None = None  # at most this many pending jobs of owner; None: no cap

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            raise InvalidSubmission(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
            )


@dataclass(frozen=True)
class Upload:
    """What filling the writer brought: the form fields sent with the file, its size, and
    its base name (cleaned by the reader; None when the upload named none)."""

    fields: Mapping[str, str]
    size: int
    filename: str | None = None


Fill = Callable[[StorageWriter], Awaitable[Upload]]  # writes the file; never commits


class Analysis(NamedTuple):
    """What a submit asks for: the pipeline, its options, where to POST the job's end."""

    pipeline_id: str
    options: JobOptions
    callback_url: str | None

    def asked_by(self, job: JobRecord) -> bool:
        """Whether a recorded job asked for this pipeline and these options."""
        try:
            same_options = JobOptions.from_stored(job.options) == self.options
        except InvalidOptions:
            return False
        return job.pipeline_id == self.pipeline_id and same_options


@dataclass
class SubmitService:
    """Takes submits: the job store, storage, the pipeline catalog, the settings, and the
    process's upload slots (`upload_slot()` holds one, or raises RetryLater)."""

    store: JobRegistry
    storage: Storage
    catalog: PipelineCatalog
    settings: Settings
    upload_slot: Callable[[], AbstractContextManager[None]]

    async def submit(self, request: SubmitRequest, fill: Fill) -> uuid.UUID:
        """Store the upload and enqueue its job; the job id (an earlier one on a retry).

        Raises a SubmissionRefused, or whatever `fill` raises; nothing is kept either way.
        """
        await run_sync(self.analysis, request.fields)  # fail fast, before the upload
        await self._check_pending_cap(request)
        needed = self.settings.max_upload_bytes
        free = await run_sync(self.storage.free_bytes)  # None: no disk to run out of (S3)
        if free is not None and free < needed:
            log.warning("refused an upload: %d bytes free in storage, %d needed", free, needed)
            raise NotEnoughSpace("the server has too little free disk space to take an upload now")
        job_id = uuid.uuid4()
        key = video_key(job_id)
        with self.upload_slot():
            try:
                writer = await run_sync(self.storage.open_writer, key)
                analysis, upload = await self._store_video(request.fields, writer, fill)
            except StorageError as exc:
                log.warning("job %s: storage refused the upload: %s", job_id, exc.reason)
                raise StorageRefused("storage is not accepting uploads; nothing was kept") from exc
        new_job = NewJob(
            job_id=job_id,
            pipeline_id=analysis.pipeline_id,
            options=analysis.options.to_json(),
            input_path=key,
            idempotency_key=request.idempotency_key,
            callback_url=analysis.callback_url,
            filename=upload.filename,
            owner=request.owner,
        )
        try:
            await run_sync(self.store.create, new_job)
        except DuplicateIdempotencyKeyError:
            await run_sync(self._delete_quietly, key)
            assert request.idempotency_key is not None  # only a key can be a duplicate
            return await self._earlier_job(request.idempotency_key, analysis, request.owner)
        except Exception as exc:  # whatever the store raises: its database is gone, say
            await run_sync(self._delete_quietly, key)
            log.exception("could not record job %s", job_id)
            raise CouldNotRecord("the job could not be recorded; nothing was kept") from exc
        log.info(
            "job %s: accepted (%d bytes, pipeline %s)", job_id, upload.size, analysis.pipeline_id
        )
        return job_id

    def analysis(self, fields: Mapping[str, str], with_callback: bool = True) -> Analysis:
        """What the fields ask for; InvalidSubmission naming what is wrong. Checking a
        callback URL (with_callback) resolves its host: call this in a thread."""
        options_fields = dict(fields)
        callback_url = options_fields.pop(CALLBACK_FIELD, "") or None
        pipeline_id = options_fields.pop(PIPELINE_FIELD, "") or DEFAULT_PIPELINE_ID
        entry = self.catalog.get(pipeline_id)
        if entry is None:
            known = ", ".join(self.catalog.ids()) or "none"
            raise InvalidSubmission(
                f"unknown pipeline {pipeline_id!r}; available pipelines: {known}"
            )
        if not entry.available:
            raise InvalidSubmission(
                f"pipeline {pipeline_id!r} is unavailable: {entry.unavailable_reason}"
            )
        try:
            options = JobOptions.from_form(options_fields)
            if callback_url is not None and with_callback:
                if not self.settings.webhook_secret:
                    raise InvalidSubmission(
                        "callback_url needs the server's FORGESYTE_WEBHOOK_SECRET to be set"
                    )
                check_callback_url(callback_url, allow_private=self.settings.webhook_allow_private)
        except (InvalidOptions, UnsafeCallbackUrl) as exc:
            raise InvalidSubmission(str(exc)) from None
        return Analysis(pipeline_id, options, callback_url)

    async def _store_video(
        self, query: Mapping[str, str], writer: StorageWriter, fill: Fill
    ) -> tuple[Analysis, Upload]:
        """Fill the writer, check all fields (the query's win; its callback URL was checked
        already), commit; abort on anything else. The analysis and the upload."""
        try:
            upload = await fill(writer)
            fields = {**upload.fields, **query}
            analysis = await run_sync(self.analysis, fields, CALLBACK_FIELD not in query)
            await run_sync(writer.commit)
        except BaseException:
            # whatever went wrong before the commit (a cancelled request too), the uploaded
            # bytes must not stay behind; abort() is harmless on an aborted writer
            with contextlib.suppress(Exception):
                await run_sync(writer.abort)
            raise
        return analysis, upload

    async def _check_pending_cap(self, request: SubmitRequest) -> None:
        """RetryLater when the owner has its cap of pending jobs already (a retry of a job
        it submitted with this Idempotency-Key passes: it makes no new job)."""
        cap = request.pending_cap
        if cap is None:
            return
        try:
            pending = await run_sync(self.store.count_pending, request.owner)
            if pending < cap:
                return
            key = request.idempotency_key
            earlier = await run_sync(self.store.get_by_idempotency_key, key) if key else None
        except Exception as exc:  # whatever the store raises, as in submit
            log.exception("could not count the pending jobs of a submit's key")
            raise CouldNotRecord("the database is not answering; nothing was kept") from exc
        if earlier is not None and earlier.owner == request.owner:
            return
        raise RetryLater(
            f"this key has {pending} jobs waiting, its limit (FORGESYTE_MAX_PENDING_PER_KEY);"
            f" submit again once some have started",
            PENDING_RETRY_AFTER_S,
        )

    async def _earlier_job(self, idempotency_key: str, analysis: Analysis, owner: str) -> uuid.UUID:
        """The job already holding this Idempotency-Key, if the same key asked for the same
        analysis (another key's job is a conflict: its id is not told)."""
        try:
            earlier = await run_sync(self.store.get_by_idempotency_key, idempotency_key)
        except Exception as exc:  # whatever the store raises, as in submit
            log.exception("could not look up the Idempotency-Key of a submit")
            raise CouldNotRecord("the database is not answering; nothing was kept") from exc
        if earlier is None or earlier.owner != owner or not analysis.asked_by(earlier):
            raise IdempotencyConflict("this Idempotency-Key was used with different parameters")
        log.info("job %s: a submit with its Idempotency-Key was answered with it", earlier.job_id)
        return earlier.job_id

    def _delete_quietly(self, key: str) -> None:
        """Remove a stored video no job will own; a failure is only logged, not raised over
        the error that led here (the start-up sweep removes what is left)."""
        try:
            self.storage.delete(key)
        except (StorageError, OSError) as exc:
            log.warning("could not remove %s: %s", key, exc)
