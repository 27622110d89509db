"""Render jobs: persisted progress, and an index matching the claim order.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("render_jobs") as batch:
        batch.add_column(sa.Column("progress_step", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("progress_total", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index("ix_render_jobs_claim", ["status", "priority", "position"])


def downgrade() -> None:
    with op.batch_alter_table("render_jobs") as batch:
        batch.drop_index("ix_render_jobs_claim")
        batch.drop_column("progress_total")
        batch.drop_column("progress_step")
