"""Worker fixtures (real analysis children) for the tests that store a job's results."""

from tests.workers.conftest import enqueue, make_worker

__all__ = ["enqueue", "make_worker"]
