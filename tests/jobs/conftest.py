"""The job store contract runs on every store: in memory, DuckDB, PostgreSQL.

Here ``store`` is parametrized over all three, each on a `SteppingClock` (the ``clock``
fixture) so a test can expire a lease by moving time on. A test bound to some stores
says so: ``@pytest.mark.parametrize("store", ["postgresql"], indirect=True)``.
"""

from __future__ import annotations

import pytest

from forgesyte.jobs.store import JobStore
from tests.support.stores import STORE_KINDS, SteppingClock, make_store


@pytest.fixture
def clock() -> SteppingClock:
    """The clock of the store under test."""
    return SteppingClock()


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, clock: SteppingClock) -> JobStore:
    """A fresh job store of each kind, on the test's clock."""
    return make_store(request.param, request, clock)
