"""The dossier's start date and expected subsidy, for the annual cap at intake.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Intake read them from every earlier dossier's archived invoice, once per
upload; rows recorded before this revision keep NULL and are still read that
way. Plain SQLAlchemy types, so that this file never changes when the models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dossiers") as table:
        table.add_column(sa.Column("start_date", sa.Date(), nullable=True))
        table.add_column(
            sa.Column(
                "expected_subsidy", sa.Numeric(precision=12, scale=2), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("dossiers") as table:
        table.drop_column("expected_subsidy")
        table.drop_column("start_date")
