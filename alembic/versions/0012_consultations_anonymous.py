"""12345 consultations without an account

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("reference", sa.String(length=16), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_consultations_reference"), ["reference"]
        )


def downgrade() -> None:
    # Consultations sent without an account have nobody to belong to in the old schema.
    op.execute("DELETE FROM consultations WHERE account_id IS NULL")
    with op.batch_alter_table("consultations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_consultations_reference"), type_="unique")
        batch_op.drop_column("reference")
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
