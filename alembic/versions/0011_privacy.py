"""PIPL consent and forms kept across a session timeout

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import portal.db
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("privacy_version", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("privacy_consented_at", portal.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("closed_at", portal.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("closed_phone", sa.String(length=11), nullable=True))
        batch_op.add_column(sa.Column("closed_id_number", sa.String(length=18), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_accounts_closed_phone"), ["closed_phone"], unique=False
        )

    op.create_table(
        "kept_forms",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=8), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_kept_forms_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kept_forms")),
    )
    with op.batch_alter_table("kept_forms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kept_forms_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kept_forms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kept_forms_expires_at"))
    op.drop_table("kept_forms")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_closed_phone"))
        batch_op.drop_column("closed_id_number")
        batch_op.drop_column("closed_phone")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("privacy_consented_at")
        batch_op.drop_column("privacy_version")
