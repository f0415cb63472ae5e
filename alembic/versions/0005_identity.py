"""identity: accounts verified by the identity platform

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:40:00

An account may lose its typed-in ID number to the verified owner (id_number
nullable), may have no password (made by 统一身份认证 sign-in), and records how it
was verified and the platform's `sub`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portal.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.alter_column("id_number", existing_type=sa.String(length=18), nullable=True)
        batch_op.alter_column("password_hash", existing_type=sa.String(length=200), nullable=True)
        batch_op.add_column(sa.Column("verified_by", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("verified_level", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("verified_at", portal.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("sso_subject", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_accounts_sso_subject"), ["sso_subject"]
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_accounts_sso_subject"), type_="unique")
        batch_op.drop_column("sso_subject")
        batch_op.drop_column("verified_at")
        batch_op.drop_column("verified_level")
        batch_op.drop_column("verified_by")
        batch_op.alter_column("password_hash", existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column("id_number", existing_type=sa.String(length=18), nullable=False)
