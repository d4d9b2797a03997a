"""Records and callers for the API's authentication tests.

Two providers, A (0412345614) and B (0712345036), each with a portal login
and dossiers, and one staff login. A caller at 203.0.113.9 is not this
machine, so only a sign-in or the staff token lets it in.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import httpx

from adapters.records import Dossier, Provider
from web.auth import create_user

PASSWORD = "correct horse battery"
A_EMAIL = "an@opleidingen-a.example"
B_EMAIL = "bert@advies-b.example"
STAFF_EMAIL = "staff@kmo-dossier.example"
A_PROVIDER = "0412345614"
B_PROVIDER = "0712345036"

A_TRAINING = "0412345614-ls-a-1"
A_ADVICE = "0412345614-adv-a-2"
B_TRAINING = "0712345036-ls-b-1"

OUTSIDE = ("203.0.113.9", 40000)  # TEST-NET-3: never this machine


def add_records(session_factory) -> None:
    """Providers A and B, their three dossiers and the three logins."""
    with session_factory.begin() as session:
        for provider_id, name in [(A_PROVIDER, "A"), (B_PROVIDER, "B")]:
            session.add(
                Provider(
                    provider_id=provider_id,
                    name=f"Provider {name}",
                    dv_numbers=[],
                    container_email=f"{provider_id}@containers.kmo-dossier.example",
                    created_at=datetime(2026, 11, 1, tzinfo=UTC),
                )
            )
        session.flush()
        session.add_all(
            [
                dossier_row(A_TRAINING, "LS-A-1", "training"),
                dossier_row(A_ADVICE, "ADV-A-2", "advice"),
                dossier_row(B_TRAINING, "LS-B-1", "training"),
            ]
        )
        create_user(session, A_EMAIL, PASSWORD, "provider", A_PROVIDER)
        create_user(session, B_EMAIL, PASSWORD, "provider", B_PROVIDER)
        create_user(session, STAFF_EMAIL, PASSWORD, "staff")


def dossier_row(dossier_id: str, invoice_number: str, kind: str) -> Dossier:
    return Dossier(
        dossier_id=dossier_id,
        workflow_id=f"dossier-{dossier_id}",
        provider_id=dossier_id.split("-", 1)[0],
        invoice_number=invoice_number,
        kind=kind,
        client_name="Bakkerij Peeters BV",
        client_enterprise_number="0123456749",
        step="final_report" if kind == "advice" else "payment",
        warnings=[],
        created_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
    )


def basic(email: str, password: str = PASSWORD) -> dict[str, str]:
    """The Authorization header of an HTTP Basic sign-in."""
    token = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def client_of(app, address: tuple[str, int] | None = None) -> httpx.AsyncClient:
    """An in-process client of the app; from `address`, else from 127.0.0.1."""
    transport = (
        httpx.ASGITransport(app=app, client=address)
        if address
        else httpx.ASGITransport(app=app)
    )
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")
