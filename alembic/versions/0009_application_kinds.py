"""Application kinds (延续/变更/注销/补办) of a case about a licence

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:45:00
"""

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
