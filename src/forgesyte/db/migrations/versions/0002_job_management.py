"""Job management: the `cancelled` status, the newest-first list index, the webhook outbox.

Revision ID: 0002_job_management
Revises: 0001_create_jobs
Create Date: 2026-12-03

`status` is a plain string column, so `cancelled` needs no type change going up. Going
down, a cancelled job becomes `failed` with a message saying so: the code of revision
0001 knows no `cancelled` and must still read every row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_job_management"
down_revision: str | None = "0001_create_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CANCELLED_MESSAGE = "cancelled on request"


def upgrade() -> None:
    """Add the (created_at, job_id) index and the job_webhooks outbox table."""
    op.create_index("ix_jobs_created_at_job_id", "jobs", ["created_at", "job_id"])
    op.create_table(
        "job_webhooks",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("callback_url", sa.String(2048), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Turn cancelled jobs into failed ones, drop the outbox and the list index."""
    jobs = sa.table("jobs", sa.column("status", sa.String), sa.column("error_message", sa.Text))
    op.execute(
        jobs.update()
        .where(jobs.c.status == "cancelled")
        .values(status="failed", error_message=CANCELLED_MESSAGE)
    )
    op.drop_table("job_webhooks")
    op.drop_index("ix_jobs_created_at_job_id", table_name="jobs")
