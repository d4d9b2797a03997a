"""What the API reads of the dossier records, as JSON-ready dicts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import HTTPException

from adapters.records import Dossier, User
from web import auth


def dossier_json(row: Dossier) -> dict[str, Any]:
    return {
        "dossier_id": row.dossier_id,
        "workflow_id": row.workflow_id,
        "provider_id": row.provider_id,
        "invoice_number": row.invoice_number,
        "kind": row.kind,
        "client": {
            "name": row.client_name,
            "enterprise_number": row.client_enterprise_number,
        },
        "step": row.step,
        "next_deadline": _iso(row.next_deadline),
        "fee": {
            "total_excl_vat": _money(row.fee_excl_vat),
            "vat": _money(row.fee_vat),
            "total_incl_vat": _money(row.fee_incl_vat),
        },
        "warnings": row.warnings,
        "created_at": _iso(row.created_at),
        "closed_at": _iso(row.closed_at),
        "outcome": row.outcome,
        "retain_until": _iso(row.retain_until),
    }


def list_dossiers(session_factory, user: User) -> list[dict[str, Any]]:
    """The dossiers `user` may see (`web.auth`), newest first."""
    with session_factory() as session:
        return [dossier_json(row) for row in auth.visible_dossiers(session, user)]


def find_dossier(session_factory, user: User, dossier_id: str) -> dict[str, Any] | None:
    """The dossier's row if `user` may see it; None as if it did not exist."""
    row = visible_dossier(session_factory, user, dossier_id)
    return dossier_json(row) if row is not None else None


def visible_dossier(session_factory, user: User, dossier_id: str) -> Dossier | None:
    """The dossier's record if `user` may see it (`web.auth`), else None."""
    with session_factory() as session:
        try:
            return auth.visible_dossier(session, user, dossier_id)
        except HTTPException:
            return None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()
