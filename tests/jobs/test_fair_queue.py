"""The fair queue, on every store: pending jobs are claimed round-robin across owners,
oldest first within one owner, so one owner's backlog never starves another's new job."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from forgesyte.jobs.sql_store import SqlJobStore
from forgesyte.jobs.store import JobStore
from tests.jobs.test_store_contract import new_job

LEASE_S = 30.0


def claim_owners(store: JobStore, count: int) -> list[str]:
    owners = []
    for _ in range(count):
        job = store.claim_next("w", LEASE_S)
        assert job is not None
        owners.append(job.owner)
    return owners


def test_claims_go_round_robin_across_owners_oldest_first_within_one(store: JobStore) -> None:
    backlog = [store.create(new_job(owner="alice")).job_id for _ in range(6)]
    bobs = [store.create(new_job(owner="bob")).job_id for _ in range(2)]
    carols = store.create(new_job(owner="carol")).job_id
    claimed = [store.claim_next("w", LEASE_S) for _ in range(9)]
    assert all(job is not None for job in claimed)
    order = [job.job_id for job in claimed if job is not None]
    # never served: by name; then whoever was served longest ago
    assert order == [
        backlog[0],
        bobs[0],
        carols,
        backlog[1],
        bobs[1],
        *backlog[2:],
    ]
    assert store.claim_next("w", LEASE_S) is None


def test_a_backlog_delays_a_new_owners_job_by_one_claim_at_most(store: JobStore) -> None:
    """500 of alice's jobs wait; bob's job, submitted after alice was served, is next."""
    for _ in range(500):
        store.create(new_job(owner="alice"))
    assert claim_owners(store, 3) == ["alice"] * 3
    store.create(new_job(owner="bob"))
    assert claim_owners(store, 2) == ["bob", "alice"]
    store.create(new_job(owner="bob"))
    assert claim_owners(store, 2) == ["bob", "alice"]  # bob served before alice's last
    store.create(new_job(owner="carol"))
    store.create(new_job(owner="bob"))
    assert sorted(claim_owners(store, 2)) == ["bob", "carol"]
    assert claim_owners(store, 1) == ["alice"]


@pytest.mark.parametrize("store", ["duckdb", "postgresql"], indirect=True)
def test_the_claim_is_one_update_statement(store: SqlJobStore) -> None:
    """One UPDATE ... RETURNING picks and takes the job (the owner's last claim is set by
    one more statement in its transaction)."""
    store.create(new_job(owner="alice"))
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.strip().split()[0].upper())

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        assert store.claim_next("w", LEASE_S) is not None
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert statements.count("UPDATE") == 1
    assert statements.count("INSERT") == 1  # the owner's last claim (an upsert)
