"""The store's keys (`KeyRing`) and owners, on every store: in memory, DuckDB, PostgreSQL.

Digests only, names taken for good, revocation, last_used_at at most once a minute; the
owner of a job, lists and searches limited to one owner, the per-owner pending count.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import pytest

from forgesyte.jobs.keys import ADMIN_NAME, DuplicateKeyName, Role
from forgesyte.jobs.store import JobStore
from forgesyte.search.values import IndexEntries, SearchQuery, TextEntry
from tests.jobs.test_store_contract import new_job
from tests.support.stores import SteppingClock


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_key_is_found_by_its_digest_until_revoked(store: JobStore) -> None:
    assert not store.has_keys()
    made = store.create_key("alice", Role.USER, digest("k1"))
    assert (made.name, made.role, made.last_used_at) == ("alice", Role.USER, None)
    store.create_key("bob", Role.VIEWER, digest("k2"))
    assert store.has_keys()
    found = store.key_by_digest(digest("k1"))
    assert found is not None and (found.name, found.role) == ("alice", Role.USER)
    assert store.key_by_digest(digest("nope")) is None
    assert [key.name for key in store.list_keys()] == ["alice", "bob"]
    assert store.revoke_key("alice")
    assert not store.revoke_key("alice")  # revoked already
    assert not store.revoke_key("carol")  # never was
    assert store.key_by_digest(digest("k1")) is None
    assert [key.name for key in store.list_keys()] == ["bob"]
    assert store.revoke_key("bob")
    assert not store.has_keys()


def test_a_name_is_taken_for_good(store: JobStore) -> None:
    """A revoked key's name, which its jobs still carry, is never given to a new key."""
    store.create_key("alice", Role.USER, digest("k1"))
    with pytest.raises(DuplicateKeyName):
        store.create_key("alice", Role.ADMIN, digest("k2"))
    store.revoke_key("alice")
    with pytest.raises(DuplicateKeyName):
        store.create_key("alice", Role.USER, digest("k3"))
    assert store.key_by_digest(digest("k3")) is None


def test_last_used_is_written_at_most_once_a_minute(store: JobStore, clock: SteppingClock) -> None:
    store.create_key("alice", Role.USER, digest("k1"))
    store.touch_key("alice")
    first = store.list_keys()[0].last_used_at
    assert first is not None
    clock.advance(30)
    store.touch_key("alice")
    assert store.list_keys()[0].last_used_at == first
    clock.advance(31)
    store.touch_key("alice")
    later = store.list_keys()[0].last_used_at
    assert later is not None and later - first >= timedelta(minutes=1)


def test_a_job_keeps_its_owner_and_lists_filter_by_it(store: JobStore) -> None:
    mine = store.create(new_job(owner="alice"))
    theirs = store.create(new_job(owner="bob"))
    admins = store.create(new_job())
    assert store.get(mine.job_id).owner == "alice"  # type: ignore[union-attr]
    assert admins.owner == ADMIN_NAME
    assert [job.job_id for job in store.list_page(limit=10, owner="alice")] == [mine.job_id]
    every = {job.job_id for job in store.list_page(limit=10)}
    assert every == {mine.job_id, theirs.job_id, admins.job_id}
    assert store.count_pending("alice") == 1
    assert store.count_pending("carol") == 0
    assert store.pending_by_owner() == {"alice": 1, "bob": 1, ADMIN_NAME: 1}
    store.claim_next("w", 30)
    assert sum(store.pending_by_owner().values()) == 2


def test_a_search_with_an_owner_finds_only_that_owners_jobs(store: JobStore) -> None:
    found = {}
    for owner in ("alice", "bob"):
        job = store.create(new_job(owner=owner))
        claimed = store.claim_next("w", 30)
        assert claimed is not None and claimed.job_id == job.job_id
        entries = IndexEntries(text=(TextEntry("PLATFORM 9", 0.0, 1.0, 0.9),), objects=())
        assert store.complete(job.job_id, "w", "results/x.jsonl", {}, index=entries)
        found[owner] = job.job_id
    every = store.search(SearchQuery.parse("platform 9"))
    assert {hit.job_id for hit in every} == set(found.values())
    alices = store.search(dataclasses.replace(SearchQuery.parse("platform 9"), owner="alice"))
    assert [hit.job_id for hit in alices] == [found["alice"]]
