"""Why a submit is refused: one type per reason, each given its status by api/errors.py.
Every message is the client's answer: it names no storage key, path or URL."""

from __future__ import annotations


class SubmissionRefused(Exception):
    """A submit that is not taken: nothing of it is kept."""


class InvalidSubmission(SubmissionRefused):
    """A bad Idempotency-Key, pipeline, option or callback URL, or a broken-off upload."""


class IdempotencyConflict(SubmissionRefused):
    """The Idempotency-Key belongs to a job that asked for another analysis."""


class UploadTooLarge(SubmissionRefused):
    """The upload is over the size limit."""


class UploadStalled(SubmissionRefused):
    """The upload missed its deadline, or nothing arrived for too long."""


class RetryLater(SubmissionRefused):
    """Refused for now (every slot is taken): the client may try again after retry_after_s."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotEnoughSpace(SubmissionRefused):
    """Storage has less free space than an upload of the size limit may need."""


class StorageRefused(SubmissionRefused):
    """Storage would not take the upload."""


class CouldNotRecord(SubmissionRefused):
    """The job store failed while the job was recorded or its Idempotency-Key looked up."""
