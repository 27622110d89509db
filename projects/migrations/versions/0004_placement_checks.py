"""Placement checks: what the checker found in each render, re-roll chains, and the project's thresholds.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("renders") as batch:
        batch.add_column(sa.Column("placement", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reroll_group", sa.Integer(), nullable=True))
    with op.batch_alter_table("render_jobs") as batch:
        batch.add_column(sa.Column("until_placed", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reroll_of", sa.Integer(), nullable=True))
    with op.batch_alter_table("project_settings") as batch:
        batch.add_column(sa.Column("placement_iou", sa.Float(), nullable=False, server_default="0.5"))
        batch.add_column(sa.Column("placement_score", sa.Float(), nullable=False, server_default="0.2"))


def downgrade() -> None:
    with op.batch_alter_table("project_settings") as batch:
        batch.drop_column("placement_score")
        batch.drop_column("placement_iou")
    with op.batch_alter_table("render_jobs") as batch:
        batch.drop_column("reroll_of")
        batch.drop_column("until_placed")
    with op.batch_alter_table("renders") as batch:
        batch.drop_column("reroll_group")
        batch.drop_column("placement")
