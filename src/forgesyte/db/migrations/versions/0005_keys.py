"""API keys, the owner of each job, and the fair queue's record of each owner's last claim.

Revision ID: 0005_keys
Revises: 0004_search_index
Create Date: 2026-12-07

Going up adds `jobs.owner` (the name of the key that submitted the job): every job that
exists already belongs to the admin, named `admin` (the name `FORGESYTE_API_KEY` acts
under, which no stored key may take), and new rows that name no owner get the same from
the column's default. It adds the `api_keys` table (digests only) and `queue_owners`, and
on PostgreSQL the (status, owner, created_at) index the per-owner pending count reads.
On DuckDB the column stays nullable and has no index: DuckDB cannot add a NOT NULL
column to a table with indexes, nor drop (going down) a column an index covers within
the migration's transaction; its ART indexes serve point lookups, not these counts,
which its column scan answers (about 1 ms for 10,000 pending jobs).

Going down drops the tables, the index and the column (DuckDB: the jobs indexes are
dropped and made again around it, as in 0004). Keys are lost going down; jobs are kept.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_keys"
down_revision: str | None = "0004_search_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADMIN_OWNER = "admin"  # jobs/keys.py's ADMIN_NAME, spelled here: a migration is frozen
NEVER_SERVED = "1970-01-01T00:00:00+00:00"  # jobs/rules.py's: an owner not yet served
OWNER_INDEX = "ix_jobs_status_owner_created_at"
# the jobs indexes before this revision: (name, columns, unique)
JOB_INDEXES = (
    ("ix_jobs_status_created_at", ["status", "created_at"], False),
    ("ix_jobs_idempotency_key", ["idempotency_key"], True),
    ("ix_jobs_created_at_job_id", ["created_at", "job_id"], False),
)


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Add jobs.owner (existing jobs: the admin's), its index, api_keys and queue_owners."""
    op.add_column(
        "jobs",
        sa.Column(
            "owner", sa.String(64), nullable=not _is_postgresql(), server_default=ADMIN_OWNER
        ),
    )
    op.execute(
        sa.text("UPDATE jobs SET owner = :admin WHERE owner IS NULL").bindparams(admin=ADMIN_OWNER)
    )
    if _is_postgresql():
        op.create_index(OWNER_INDEX, "jobs", ["status", "owner", "created_at"])
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_digest", "api_keys", ["digest"], unique=True)
    op.create_table(
        "queue_owners",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("last_claimed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_queue_owners_last_claimed_at", "queue_owners", ["last_claimed_at", "owner"])
    # every owner of a job is known to the fair queue, as never served
    op.execute(
        sa.text(
            "INSERT INTO queue_owners (owner, last_claimed_at)"
            " SELECT DISTINCT owner, CAST(:never AS TIMESTAMP WITH TIME ZONE) FROM jobs"
        ).bindparams(never=NEVER_SERVED)
    )


def downgrade() -> None:
    """Drop queue_owners, api_keys, the owner index and jobs.owner."""
    op.drop_table("queue_owners")  # its index with it
    op.drop_table("api_keys")  # its index with it
    if _is_postgresql():
        op.drop_index(OWNER_INDEX, table_name="jobs")
        op.drop_column("jobs", "owner")
        return
    for name, _columns, _unique in JOB_INDEXES:
        op.drop_index(name, table_name="jobs")
    op.drop_column("jobs", "owner")
    for name, columns, unique in JOB_INDEXES:
        op.create_index(name, "jobs", columns, unique=unique)
