"""The catalogue's version token, so every process can tell its in-memory copy is current

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 14:50:46
"""

from collections.abc import Sequence
from uuid import uuid4

import sqlalchemy as sa

import portal.db
from alembic import op
from portal.clock import utcnow

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "catalogue_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("changed_at", portal.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_version")),
    )
    # The one row every change to items, halls or bundles rewrites (portal.catalogue.models).
    op.bulk_insert(table, [{"id": 1, "token": uuid4().hex, "changed_at": utcnow()}])


def downgrade() -> None:
    op.drop_table("catalogue_version")
