"""The procedure after submission: 补正 after the formal submission, the clock, documents.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:27:00.042520
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        # Both JSON columns may be null (no request yet, clock running): no default needed.
        batch_op.add_column(sa.Column("correction", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("correction_round", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("suspension", sa.JSON(), nullable=True))
        # Existing cases have no documents: an empty list, not null.
        batch_op.add_column(sa.Column("documents", sa.JSON(), server_default="[]", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("documents")
        batch_op.drop_column("suspension")
        batch_op.drop_column("correction_round")
        batch_op.drop_column("correction")
