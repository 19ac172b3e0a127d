"""The search index: `jobs.filename`, and the text segments and object tracks of completed jobs.

Revision ID: 0004_search_index
Revises: 0003_job_segments
Create Date: 2026-12-07

Going up adds the nullable `jobs.filename` (jobs submitted before it have none) and the
index tables, empty: a migration cannot read the timelines, which live in storage, so the
jobs completed before this revision are indexed by the backfill that `serve` and
`worker` run at start (`forgesyte.search.backfill`), one job per transaction, marked in
`search_jobs`. On PostgreSQL it creates the pg_trgm and fuzzystrmatch extensions (both
trusted: the database owner may create them) and a GIN trigram index on the folded text;
on DuckDB, which has no trigram index, the `search_trigrams` table.

Going down drops the index and the column (DuckDB cannot drop a column of a table that
has indexes: the jobs indexes are dropped and made again around it). The extensions stay:
something else in the database may use them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_search_index"
down_revision: str | None = "0003_job_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the jobs indexes of revisions 0001 and 0002: (name, columns, unique)
JOB_INDEXES = (
    ("ix_jobs_status_created_at", ["status", "created_at"], False),
    ("ix_jobs_idempotency_key", ["idempotency_key"], True),
    ("ix_jobs_created_at_job_id", ["created_at", "job_id"], False),
)


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Add jobs.filename and the search index's tables (and its trigram index)."""
    op.add_column("jobs", sa.Column("filename", sa.String(255), nullable=True))
    op.execute(sa.schema.CreateSequence(sa.Sequence("search_entry_ids")))
    op.create_table(
        "search_jobs",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "search_text",
        sa.Column("entry_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("folded", sa.Text(), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
    )
    op.create_index("ix_search_text_job_id_seq", "search_text", ["job_id", "seq"], unique=True)
    op.create_table(
        "search_objects",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("class_name", sa.Text(), nullable=False),
        sa.Column("class_folded", sa.Text(), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
    )
    op.create_index(
        "ix_search_objects_class_job", "search_objects", ["class_folded", "job_id", "start_s"]
    )
    if _is_postgresql():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch")
        op.execute(
            "CREATE INDEX ix_search_text_folded_trgm ON search_text "
            "USING gin (folded gin_trgm_ops)"
        )
    else:
        op.create_table(
            "search_trigrams",
            sa.Column("gram", sa.String(3), nullable=False),
            sa.Column("entry_id", sa.BigInteger(), nullable=False),
        )


def downgrade() -> None:
    """Drop the search index's tables and jobs.filename."""
    if not _is_postgresql():
        op.drop_table("search_trigrams")
    op.drop_table("search_objects")
    op.drop_table("search_text")  # its indexes with it
    op.drop_table("search_jobs")
    op.execute(sa.schema.DropSequence(sa.Sequence("search_entry_ids")))
    if _is_postgresql():
        op.drop_column("jobs", "filename")
        return
    for name, _columns, _unique in JOB_INDEXES:
        op.drop_index(name, table_name="jobs")
    op.drop_column("jobs", "filename")
    for name, columns, unique in JOB_INDEXES:
        op.create_index(name, "jobs", columns, unique=unique)
