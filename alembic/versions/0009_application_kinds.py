"""Application kinds (延续/变更/注销/补办) of a case about a licence

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every case filed so far is a new application: the server default says so.
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "application_kind", sa.String(length=16), server_default="new", nullable=False
            )
        )
        batch_op.add_column(sa.Column("licence_number", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_cases_licence_number"), ["licence_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_licence_number"))
        batch_op.drop_column("licence_number")
        batch_op.drop_column("application_kind")
