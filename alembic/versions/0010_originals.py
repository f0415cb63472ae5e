"""Originals by post (材料寄递) and the delivery address book

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import portal.db
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "originals",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=True),
        sa.Column("carrier", sa.String(length=10), nullable=True),
        sa.Column("tracking_no", sa.String(length=40), nullable=True),
        sa.Column("hall_code", sa.String(length=32), nullable=True),
        sa.Column("address", sa.JSON(), nullable=True),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("posted_at", portal.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", portal.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_originals_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_originals")),
    )
    op.create_table(
        "saved_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=50), nullable=False),
        sa.Column("phone", sa.String(length=11), nullable=False),
        sa.Column("province_code", sa.String(length=6), nullable=False),
        sa.Column("city_code", sa.String(length=6), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("province", sa.String(length=50), nullable=False),
        sa.Column("city", sa.String(length=50), nullable=False),
        sa.Column("district", sa.String(length=50), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("postcode", sa.String(length=6), nullable=True),
        sa.Column("last_used_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_saved_addresses_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_addresses")),
    )
    with op.batch_alter_table("saved_addresses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saved_addresses_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_saved_addresses_last_used_at"), ["last_used_at"], unique=False
        )

    with op.batch_alter_table("halls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("postage", sa.String(length=200), nullable=False, server_default="")
        )

    # The address book starts with the express addresses already used, one row per
    # distinct address of an account (its latest use), so "寄到上次的地址" keeps working.
    op.execute(
        """
        INSERT INTO saved_addresses (account_id, recipient, phone, province_code, city_code,
            district_code, province, city, district, detail, postcode, last_used_at)
        SELECT c.account_id, d.recipient, d.phone, d.province_code, d.city_code,
            d.district_code, d.province, d.city, d.district, d.detail, MAX(d.postcode),
            MAX(d.selected_at)
        FROM deliveries d JOIN cases c ON c.id = d.case_id
        WHERE d.method = 'express' AND d.district_code IS NOT NULL
            AND d.recipient IS NOT NULL AND d.phone IS NOT NULL AND d.detail IS NOT NULL
            AND d.province IS NOT NULL AND d.city IS NOT NULL AND d.district IS NOT NULL
            AND d.province_code IS NOT NULL AND d.city_code IS NOT NULL
        GROUP BY c.account_id, d.recipient, d.phone, d.province_code, d.city_code,
            d.district_code, d.province, d.city, d.district, d.detail
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("halls", schema=None) as batch_op:
        batch_op.drop_column("postage")

    with op.batch_alter_table("saved_addresses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saved_addresses_last_used_at"))
        batch_op.drop_index(batch_op.f("ix_saved_addresses_account_id"))

    op.drop_table("saved_addresses")
    op.drop_table("originals")
