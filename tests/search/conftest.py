"""The search contract runs on every store: in memory, DuckDB, PostgreSQL (``store``)."""

from __future__ import annotations

import pytest

from forgesyte.jobs.store import JobStore
from tests.support.stores import STORE_KINDS, SteppingClock, make_store


@pytest.fixture
def clock() -> SteppingClock:
    """The clock of the store under test: every job is created a microsecond after the last."""
    return SteppingClock()


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, clock: SteppingClock) -> JobStore:
    """A fresh job store of each kind."""
    return make_store(request.param, request, clock)
