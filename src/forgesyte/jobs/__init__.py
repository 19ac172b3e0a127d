"""Jobs: the model, its states, and the store that is also the FIFO queue."""

from forgesyte.jobs.models import Base, Job, JobStatus
from forgesyte.jobs.store import JobOptions, JobRecord, JobStore, NewJob

__all__ = ["Base", "Job", "JobOptions", "JobRecord", "JobStatus", "JobStore", "NewJob"]
