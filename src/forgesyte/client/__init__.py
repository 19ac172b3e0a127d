"""The Python client of a ForgeSyte server.

    from forgesyte.client import Client

    with Client("http://127.0.0.1:8000") as client:
        job = client.submit("match.mp4", frame_stride=10)
        final = job.wait(timeout=600)
        for segment in job.timeline().text:
            print(segment.start_s, segment.text)

It knows HTTP and the job options' one definition (forgesyte.jobs.options), nothing else
of the server: importing it loads no web framework, database or settings. See
docs/client.md.
"""

from forgesyte.client.client import Client, Job, WaitTimeout, option_fields
from forgesyte.client.errors import ApiError, ServerUnreachable
from forgesyte.client.transport import Backoff
from forgesyte.client.values import (
    FINISHED_STATUSES,
    ApiKey,
    Caller,
    FrameEntry,
    FrameTrackIds,
    JobListEntry,
    JobStatus,
    NewApiKey,
    ObjectTrack,
    Page,
    ResultsPage,
    SearchMatch,
    Shot,
    SourceUrl,
    Span,
    TextSegment,
    Timeline,
)
from forgesyte.jobs.options import InvalidOptions

__all__ = [
    "FINISHED_STATUSES",
    "ApiError",
    "ApiKey",
    "Backoff",
    "Caller",
    "Client",
    "FrameEntry",
    "FrameTrackIds",
    "InvalidOptions",
    "Job",
    "JobListEntry",
    "JobStatus",
    "NewApiKey",
    "ObjectTrack",
    "Page",
    "ResultsPage",
    "SearchMatch",
    "ServerUnreachable",
    "Shot",
    "SourceUrl",
    "Span",
    "TextSegment",
    "Timeline",
    "WaitTimeout",
    "option_fields",
]
