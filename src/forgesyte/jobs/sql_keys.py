"""The SQL store's API keys (DuckDB, PostgreSQL): the api_keys table, digests only.

A part of `SqlJobStore`, as the segments are (sql_segments.py): it shares the store's
engine and clock. A revoked key keeps its row (revoked_at set): its name stays taken.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from forgesyte.db.engine import retry_on_conflict
from forgesyte.db.tables import ApiKey
from forgesyte.jobs.keys import LAST_USED_EVERY, DuplicateKeyName, KeyRecord, Role
from forgesyte.jobs.sql_segments import SqlStoreBase

_KEYS = ApiKey.__table__
_LIVE = _KEYS.c.revoked_at.is_(None)


def key_from_row(row: Any) -> KeyRecord:
    """Snapshot a Core row of the api_keys table."""
    return KeyRecord(
        name=row.name,
        role=Role(row.role),
        digest=row.digest,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


class SqlKeys(SqlStoreBase):
    """The `KeyRing` on the store's engine."""

    def create_key(self, name: str, role: Role, digest: str) -> KeyRecord:
        """Store a new key; DuplicateKeyName if the name (or, by chance, digest) is taken."""
        key = KeyRecord(name, role, digest, self.clock())

        def run() -> None:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(ApiKey).values(
                        name=name, role=role.value, digest=digest, created_at=key.created_at
                    )
                )

        try:
            retry_on_conflict(run)
        except IntegrityError as exc:
            raise DuplicateKeyName(name) from exc
        return key

    def key_by_digest(self, digest: str) -> KeyRecord | None:
        """The live key with this digest, or None (a lookup on the unique digest index)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(_KEYS).where(_KEYS.c.digest == digest, _LIVE)).first()
        return key_from_row(row) if row is not None else None

    def list_keys(self) -> list[KeyRecord]:
        """Every live key, by name."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(_KEYS).where(_LIVE).order_by(_KEYS.c.name))
            return [key_from_row(row) for row in rows]

    def revoke_key(self, name: str) -> bool:
        """Revoke the live key of this name; False if there is none."""

        def run() -> bool:
            with self.engine.begin() as connection:
                result = connection.execute(
                    update(ApiKey)
                    .where(_KEYS.c.name == name, _LIVE)
                    .values(revoked_at=self.clock())
                )
                return result.rowcount == 1

        return retry_on_conflict(run)

    def has_keys(self) -> bool:
        """Whether any live key exists."""
        with self.engine.connect() as connection:
            return bool(connection.execute(select(exists().where(_LIVE))).scalar())

    def touch_key(self, name: str) -> None:
        """Record the key's use now, unless it was recorded within LAST_USED_EVERY (the
        condition is in the UPDATE, so processes racing write it once)."""
        now = self.clock()
        last = _KEYS.c.last_used_at

        def run() -> None:
            with self.engine.begin() as connection:
                connection.execute(
                    update(ApiKey)
                    .where(
                        _KEYS.c.name == name,
                        or_(last.is_(None), last <= now - LAST_USED_EVERY),
                    )
                    .values(last_used_at=now)
                )

        retry_on_conflict(run)
