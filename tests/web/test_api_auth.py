"""Who may call `/api/dossiers`: staff by machine or token, users by HTTP Basic.

A real SQLite database, archive folder and Temporal dev server (no worker:
an upload only starts its workflow). Most calls come from 203.0.113.9, which
is not this machine; the records are in `tests/web/api_users.py`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from structlog.testing import capture_logs

from adapters.archive import LocalArchive
from adapters.records import Dossier, User
from tests.web.api_users import (
    A_ADVICE,
    A_EMAIL,
    A_PROVIDER,
    A_TRAINING,
    B_EMAIL,
    B_TRAINING,
    OUTSIDE,
    PASSWORD,
    STAFF_EMAIL,
    add_records,
    basic,
    client_of,
)
from web import auth
from web.app import create_app
from web.staff import STAFF_TOKEN_ENV, STAFF_TOKEN_HEADER

OPEN_TRAINING = "training-open-1p.xml"  # issued by provider A, 0412345614
ALL_DOSSIERS = {A_TRAINING, A_ADVICE, B_TRAINING}
ROUTES = [
    ("GET", "/api/dossiers"),
    ("GET", f"/api/dossiers/{A_TRAINING}"),
    ("POST", "/api/dossiers"),
    ("POST", f"/api/dossiers/{A_TRAINING}/documents"),
]


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small costs: the real ones take a second a hash here."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "PASSWORD_HASHER", cheap)


@pytest.fixture
async def app(dev_env, settings, session_factory, dossier_workflows_removed):
    """The app with its lifespan run, on the records of providers A and B."""
    add_records(session_factory)
    app = create_app(
        settings,
        temporal_client=dev_env.client,
        session_factory=session_factory,
        archive=LocalArchive(settings.archive_dir),
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def outside(app) -> AsyncIterator[httpx.AsyncClient]:
    """A caller from another machine."""
    async with client_of(app, OUTSIDE) as client:
        yield client


@pytest.fixture
async def local(app) -> AsyncIterator[httpx.AsyncClient]:
    """A caller on this machine (127.0.0.1)."""
    async with client_of(app) as client:
        yield client


def open_training(invoices: Path, number: str) -> bytes:
    text = (invoices / OPEN_TRAINING).read_text(encoding="utf-8")
    return text.replace("LS-2026-0141", number).encode()


def credit_note(invoices: Path, number: str, cancels: str) -> bytes:
    """The open training as a UBL CreditNote of provider A naming `cancels`."""
    text = (invoices / OPEN_TRAINING).read_text(encoding="utf-8")
    text = text.replace(
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"',
        '<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"',
    ).replace("</Invoice>", "</CreditNote>")
    text = text.replace(
        "<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>",
        "<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>",
    )
    text = text.replace("<cbc:ID>LS-2026-0141</cbc:ID>", f"<cbc:ID>{number}</cbc:ID>")
    text = text.replace(
        "<cac:InvoicePeriod>",
        "<cac:BillingReference><cac:InvoiceDocumentReference>"
        f"<cbc:ID>{cancels}</cbc:ID>"
        "</cac:InvoiceDocumentReference></cac:BillingReference><cac:InvoicePeriod>",
    )
    text = text.replace("InvoiceLine>", "CreditNoteLine>")
    return text.replace("InvoicedQuantity", "CreditedQuantity").encode()


async def upload(
    client: httpx.AsyncClient, data: bytes, headers: dict[str, str], **form: str
) -> httpx.Response:
    files = {"invoice": (OPEN_TRAINING, data, "application/xml")}
    return await client.post("/api/dossiers", files=files, data=form, headers=headers)


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    if method == "POST":
        files = {"invoice": (OPEN_TRAINING, b"<Invoice/>", "application/xml")}
        return await client.post(path, files=files, headers=headers)
    return await client.request(method, path, headers=headers)


def listed(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {row["dossier_id"] for row in response.json()["dossiers"]}


# --- no sign-in, wrong sign-in ---------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_anonymous_caller_from_elsewhere_gets_401_with_a_basic_challenge(
    outside, method, path
):
    """Without credentials every route answers 401, asking for HTTP Basic."""
    response = await call(outside, method, path, {})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="dossiers"'
    assert response.json() == {
        "error": "sign in with a portal user's e-mail and password (HTTP Basic), "
        "or call from this machine or with the X-Dossier-Staff-Token header",
        "problems": [],
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    ("email", "password"),
    [(A_EMAIL, "wrong password!"), ("nobody@nowhere.example", PASSWORD)],
)
async def test_wrong_password_or_unknown_user_gets_401(
    outside, method, path, email, password
):
    """A wrong password and an unknown e-mail get the same 401 and challenge."""
    response = await call(outside, method, path, basic(email, password))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="dossiers"'
    assert response.json()["error"] == "e-mail or password is wrong"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"no colon here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
async def test_unreadable_authorization_gets_401(outside, authorization):
    """Another scheme, bad base64, no colon or no UTF-8: 401 like no sign-in."""
    response = await outside.get(
        "/api/dossiers", headers={"Authorization": authorization}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="dossiers"'


async def test_a_disabled_account_gets_401(outside, session_factory):
    """The right password of a disabled account signs nobody in."""
    with session_factory.begin() as session:
        user = session.scalar(select(User).where(User.email == A_EMAIL))
        user.disabled = True

    response = await outside.get("/api/dossiers", headers=basic(A_EMAIL))

    assert response.status_code == 401


async def test_after_ten_failures_a_minute_even_the_right_password_waits(app, outside):
    """Ten wrong passwords from one address, then 429 for a minute; others go on."""
    wrong = basic(A_EMAIL, "guess!")
    answers = [
        (await outside.get("/api/dossiers", headers=wrong)).status_code
        for _ in range(10)
    ]
    blocked = await outside.get("/api/dossiers", headers=basic(A_EMAIL))
    async with client_of(app, ("198.51.100.7", 40000)) as elsewhere:
        other_address = await elsewhere.get("/api/dossiers", headers=basic(A_EMAIL))

    assert answers == [401] * 10
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "60"
    assert blocked.json()["error"] == (
        "too many failed sign-ins; wait a minute and try again"
    )
    assert other_address.status_code == 200


async def test_right_sign_ins_are_not_counted_as_failures(outside):
    """Twelve good calls in a row all answer: only failures are limited."""
    answers = [
        (await outside.get("/api/dossiers", headers=basic(A_EMAIL))).status_code
        for _ in range(12)
    ]

    assert answers == [200] * 12


async def test_logs_of_a_failed_sign_in_hold_no_email_or_password(outside):
    """The failure is logged without the address or the password tried."""
    with capture_logs() as logs:
        await outside.get("/api/dossiers", headers=basic(A_EMAIL, "wrong password!"))

    assert [entry["event"] for entry in logs] == ["api.sign_in_failed"]
    assert A_EMAIL not in repr(logs)
    assert "wrong password!" not in repr(logs)


# --- a provider user -------------------------------------------------------------


async def test_a_provider_lists_only_its_own_dossiers(outside):
    """A's list holds its two dossiers; B's list its one."""
    a_list = await outside.get("/api/dossiers", headers=basic(A_EMAIL))
    b_list = await outside.get("/api/dossiers", headers=basic(B_EMAIL))

    assert listed(a_list) == {A_TRAINING, A_ADVICE}
    assert listed(b_list) == {B_TRAINING}


async def test_a_provider_reads_its_own_dossiers_status(outside):
    """A's own dossier answers 200 with its record."""
    response = await outside.get(f"/api/dossiers/{A_TRAINING}", headers=basic(A_EMAIL))

    assert response.status_code == 200
    assert response.json()["record"]["invoice_number"] == "LS-A-1"


async def test_another_providers_dossier_status_answers_404_like_an_unknown_one(
    outside,
):
    """A asking for B's dossier gets the very 404 of an id nobody has."""
    others = await outside.get(f"/api/dossiers/{B_TRAINING}", headers=basic(A_EMAIL))
    unknown = await outside.get("/api/dossiers/0712345036-nope", headers=basic(A_EMAIL))

    assert others.status_code == 404
    assert others.json() == {
        "error": "there is no dossier '0712345036-ls-b-1'",
        "problems": [],
    }
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "there is no dossier '0712345036-nope'"


async def test_a_provider_uploads_its_own_invoice(outside, invoices, session_factory):
    """A's own invoice without a provider field starts a dossier of A: 201."""
    number = f"AUTH-{uuid.uuid4().hex[:6].upper()}"

    response = await upload(outside, open_training(invoices, number), basic(A_EMAIL))

    assert response.status_code == 201, response.text
    with session_factory() as session:
        row = session.get(Dossier, response.json()["dossier_id"])
    assert row.provider_id == A_PROVIDER
    assert row.invoice_number == number


async def test_uploading_for_another_provider_answers_403(
    outside, invoices, session_factory
):
    """A naming provider B in the form is refused before intake: nothing recorded."""
    response = await upload(
        outside,
        open_training(invoices, "AUTH-FOR-B"),
        basic(A_EMAIL),
        provider="BE 0712.345.036",
    )

    assert response.status_code == 403
    assert response.json()["error"] == (
        "you can upload invoices for provider 0412345614 only"
    )
    with session_factory() as session:
        ids = set(session.scalars(select(Dossier.dossier_id)))
    assert ids == ALL_DOSSIERS


async def test_another_providers_invoice_is_refused_as_a_mismatch(
    outside, invoices, session_factory
):
    """B uploading A's invoice is held to provider B: 422 provider_mismatch."""
    response = await upload(
        outside, open_training(invoices, "AUTH-MISMATCH"), basic(B_EMAIL)
    )

    assert response.status_code == 422
    codes = [problem["code"] for problem in response.json()["problems"]]
    assert "provider_mismatch" in codes
    with session_factory() as session:
        ids = set(session.scalars(select(Dossier.dossier_id)))
    assert ids == ALL_DOSSIERS


async def test_a_provider_cannot_cancel_another_providers_dossier_by_credit_note(
    outside, dev_env, invoices
):
    """A's credit note uploaded by B is refused, and A's workflow gets no cancel."""
    number = f"AUTH-CN-{uuid.uuid4().hex[:6].upper()}"
    started = await upload(outside, open_training(invoices, number), basic(A_EMAIL))
    assert started.status_code == 201, started.text

    refused = await upload(
        outside, credit_note(invoices, f"CN-{number}", number), basic(B_EMAIL)
    )

    assert refused.status_code == 422
    assert [p["code"] for p in refused.json()["problems"]] == ["provider_mismatch"]
    handle = dev_env.client.get_workflow_handle(started.json()["workflow_id"])
    signalled = [
        event.workflow_execution_signaled_event_attributes.signal_name
        async for event in handle.fetch_history_events()
        if event.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert signalled == []


async def test_a_provider_may_name_its_own_provider_in_any_spelling(outside, invoices):
    """The provider field with A's own number, spelled BE 0412.345.614, is fine."""
    number = f"AUTH-OWN-{uuid.uuid4().hex[:6].upper()}"

    response = await upload(
        outside,
        open_training(invoices, number),
        basic(A_EMAIL),
        provider="BE 0412.345.614",
    )

    assert response.status_code == 201, response.text


# --- staff -----------------------------------------------------------------------


async def test_a_staff_user_signed_in_sees_every_dossier(outside):
    """A staff account over HTTP Basic lists A's and B's dossiers."""
    response = await outside.get("/api/dossiers", headers=basic(STAFF_EMAIL))

    assert listed(response) == ALL_DOSSIERS


async def test_the_staff_token_lets_in_a_caller_from_elsewhere(
    outside, monkeypatch: pytest.MonkeyPatch
):
    """With DOSSIER_STAFF_TOKEN set, its header lists everything; a wrong one 401."""
    monkeypatch.setenv(STAFF_TOKEN_ENV, "s3cret-staff-token")

    right = await outside.get(
        "/api/dossiers", headers={STAFF_TOKEN_HEADER: "s3cret-staff-token"}
    )
    wrong = await outside.get(
        "/api/dossiers", headers={STAFF_TOKEN_HEADER: "guessed-token"}
    )
    status = await outside.get(
        f"/api/dossiers/{B_TRAINING}",
        headers={STAFF_TOKEN_HEADER: "s3cret-staff-token"},
    )

    assert listed(right) == ALL_DOSSIERS
    assert wrong.status_code == 401
    assert status.status_code == 200


async def test_a_caller_on_this_machine_is_staff_without_signing_in(local):
    """From 127.0.0.1, as `dossier list` calls it, everything is listed."""
    response = await local.get("/api/dossiers")

    assert listed(response) == ALL_DOSSIERS


async def test_this_machine_through_a_proxy_must_sign_in(local):
    """A loopback client that forwards someone else is not this machine: 401."""
    response = await local.get(
        "/api/dossiers", headers={"X-Forwarded-For": "203.0.113.9"}
    )

    assert response.status_code == 401


async def test_staff_may_upload_for_any_provider(local, invoices):
    """Staff upload A's invoice with A named in the form: 201."""
    number = f"AUTH-STAFF-{uuid.uuid4().hex[:6].upper()}"

    response = await upload(
        local, open_training(invoices, number), {}, provider=A_PROVIDER
    )

    assert response.status_code == 201, response.text


# --- posts from other sites -----------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_post_from_another_sites_page_is_refused(local, invoices, headers):
    """A browser's cross-site form post gets 403, even on this machine."""
    response = await upload(local, open_training(invoices, "AUTH-CSRF"), headers)

    assert response.status_code == 403
    assert response.json()["error"] == (
        "this request was sent from another site; call the API directly"
    )


async def test_a_post_from_the_sites_own_origin_is_accepted(local, invoices):
    """The app's own origin in Origin is no reason to refuse."""
    number = f"AUTH-ORIGIN-{uuid.uuid4().hex[:6].upper()}"

    response = await upload(
        local,
        open_training(invoices, number),
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )

    assert response.status_code == 201, response.text
