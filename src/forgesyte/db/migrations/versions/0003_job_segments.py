"""Job segments: a long job's frames cut at keyframes, analysed by several workers at once.

Revision ID: 0003_job_segments
Revises: 0002_job_management
Create Date: 2026-12-03

Going down drops the table: a job still split then runs again unsplit from the start
when its lease expires (the code of revision 0002 knows no segments).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_job_segments"
down_revision: str | None = "0002_job_management"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the job_segments table and its claim index."""
    op.create_table(
        "job_segments",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("first_frame", sa.Integer(), nullable=False),
        sa.Column("end_frame", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("frames_done", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_job_segments_status", "job_segments", ["status", "job_id", "seq"])


def downgrade() -> None:
    """Drop the job_segments table."""
    op.drop_index("ix_job_segments_status", table_name="job_segments")
    op.drop_table("job_segments")
