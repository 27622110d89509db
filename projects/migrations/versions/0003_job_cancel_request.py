"""Render jobs: a cancel the user asked for while the job was running, kept until the job ends, so a crash
before the render noticed it cannot bring the job back.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("render_jobs") as batch:
        batch.add_column(sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("render_jobs") as batch:
        batch.drop_column("cancel_requested")
