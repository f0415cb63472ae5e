"""The procedure after submission: 补正 requests and the suspended clock.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        # Null: no request yet, clock running; no default needed for existing rows.
        batch_op.add_column(sa.Column("correction", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("suspension", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("suspension")
        batch_op.drop_column("correction")
