"""The provider portal on a real SQLite database and a real archive folder.

Two providers, A (0412345614) and B (0887654321), each with a login, and one
staff login. Temporal is replaced by a client that records the signals it is
asked to send; no workflow runs here.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, func, select, text
from structlog.testing import capture_logs

from adapters.archive import LocalArchive
from adapters.records import (
    ArchiveItem,
    Dossier,
    Provider,
    TimelineEvent,
    User,
    WebSession,
    make_engine,
    make_session_factory,
    record_archived,
    upgrade_database,
)
from tests.hostile import (
    NUL,
    SCRIPT,
    SQL_DROP,
    SQL_OR,
    TEMPLATE,
    UNICODE,
    tables_intact,
)
from web import auth
from web.app import create_app
from web.auth import AccountError, authenticate, create_user
from workflows.messages import FinalReportInput

PASSWORD = "correct horse battery"
A_EMAIL = "an@opleidingen-a.example"
B_EMAIL = "bert@advies-b.example"
STAFF_EMAIL = "staff@kmo-dossier.example"

A_TRAINING = "0412345614-ls-a-1"
A_ADVICE = "0412345614-adv-a-2"
B_TRAINING = "0887654321-ls-b-1"
B_INVOICE_KEY = "0887654321/0887654321-ls-b-1/9f74a621e47e968f-factuur-b.pdf"


@dataclass
class RecordingTemporal:
    """Stands in for the Temporal client: keeps the signals sent through it."""

    signals: list[tuple[str, str, Any]] = field(default_factory=list)

    def get_workflow_handle(self, workflow_id: str) -> RecordingHandle:
        return RecordingHandle(self, workflow_id)


@dataclass
class RecordingHandle:
    client: RecordingTemporal
    workflow_id: str

    async def signal(self, signal: Any, arg: Any) -> None:
        name = getattr(signal, "__name__", signal)
        self.client.signals.append((self.workflow_id, name, arg))


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small costs: the real ones take a second a hash here."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "PASSWORD_HASHER", cheap)


@pytest.fixture
def archive(settings) -> LocalArchive:
    return LocalArchive(settings.archive_dir)


@pytest.fixture
def records(session_factory, archive):
    """Providers A and B, their dossiers, B's archived invoice and three logins."""
    with session_factory.begin() as session:
        for provider_id, name in [("0412345614", "A"), ("0887654321", "B")]:
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
                _dossier(A_TRAINING, "LS-A-1", "training"),
                _dossier(A_ADVICE, "ADV-A-2", "advice"),
                _dossier(B_TRAINING, "LS-B-1", "training"),
            ]
        )
        stored = archive.put(
            "0887654321",
            B_TRAINING,
            "factuur-b.pdf",
            b"%PDF-1.4 factuur B\n",
            retain_until=date(2036, 12, 1),
            content_type="application/pdf",
        )
        record_archived(
            session,
            stored,
            container="0887654321",
            dossier_id=B_TRAINING,
            name="factuur-b.pdf",
            content_type="application/pdf",
        )
        create_user(session, A_EMAIL, PASSWORD, "provider", "0412345614")
        create_user(session, B_EMAIL, PASSWORD, "provider", "0887654321")
        create_user(session, STAFF_EMAIL, PASSWORD, "staff")
    return session_factory


def _dossier(dossier_id: str, invoice_number: str, kind: str) -> Dossier:
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


@pytest.fixture
def temporal() -> RecordingTemporal:
    return RecordingTemporal()


@pytest.fixture
def app(settings, records, archive, temporal):
    return create_app(
        settings, temporal_client=temporal, session_factory=records, archive=archive
    )


@pytest.fixture
async def portal(app) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, called in-process through ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            yield client


async def log_in(
    portal: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    page = await portal.get("/portal/login")
    form = {"email": email, "password": password, "csrf_token": csrf_of(page)}
    return await portal.post("/portal/login", data=form)


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def upload(
    portal: httpx.AsyncClient,
    dossier_id: str,
    document_type: str,
    filename: str,
    data: bytes,
) -> httpx.Response:
    page = await portal.get(f"/portal/dossiers/{dossier_id}")
    return await portal.post(
        f"/portal/dossiers/{dossier_id}/upload",
        data={"csrf_token": csrf_of(page), "document_type": document_type},
        files={"document": (filename, data, "application/pdf")},
    )


# --- accounts ----------------------------------------------------------------


def test_create_user_keeps_the_email_lowercase_and_an_argon2_hash(records):
    """A new account's email is lowercased and its password hashed with Argon2id."""
    with records.begin() as session:
        user = create_user(session, " Els@Opleidingen-A.example", PASSWORD, "staff")

    assert user.email == "els@opleidingen-a.example"
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_create_user_refuses_a_provider_nobody_knows(records):
    """A provider account needs a known provider; the error names it."""
    with records.begin() as session, pytest.raises(AccountError) as error:
        create_user(session, "x@y.example", PASSWORD, "provider", "0999999999")

    assert str(error.value) == "there is no provider '0999999999'; give a known one"


def test_authenticate_refuses_a_disabled_account(records):
    """The right password of a disabled account logs nobody in."""
    with records.begin() as session:
        user = session.scalar(select(User).where(User.email == A_EMAIL))
        user.disabled = True

    with records() as session:
        assert authenticate(session, A_EMAIL, PASSWORD) is None


# --- logging in --------------------------------------------------------------


async def test_login_with_the_right_password_opens_the_portal(portal):
    """Good credentials set an HttpOnly, SameSite=Lax cookie and lead to /portal."""
    response = await log_in(portal, "AN@opleidingen-a.example")

    assert response.status_code == 303
    assert response.headers["location"] == "/portal"
    cookie = response.headers["set-cookie"].lower()
    assert "portal_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie
    assert (await portal.get("/portal")).status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [(A_EMAIL, "wrong password!"), ("nobody@nowhere.example", PASSWORD)],
)
async def test_wrong_login_says_only_that_email_or_password_is_wrong(
    portal, email, password
):
    """A wrong password and an unknown email get the same answer and no cookie."""
    response = await log_in(portal, email, password)

    assert response.status_code == 400
    assert "e-mail or password is wrong" in response.text
    assert "portal_session" not in response.headers.get("set-cookie", "")


async def test_the_eleventh_login_post_in_a_minute_answers_429(portal, app):
    """Ten login posts a minute per address, then 429, even with the right password.

    Another address is not slowed down by the first one's guessing.
    """
    page = await portal.get("/portal/login")
    form = {
        "email": A_EMAIL,
        "password": "wrong password!",
        "csrf_token": csrf_of(page),
    }

    answers = [
        (await portal.post("/portal/login", data=form)).status_code for _ in range(10)
    ]
    blocked = await portal.post("/portal/login", data={**form, "password": PASSWORD})

    assert answers == [400] * 10
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "60"
    assert "wait a minute" in blocked.text
    assert "portal_session" not in blocked.headers.get("set-cookie", "")
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as elsewhere:
        assert (await log_in(elsewhere, A_EMAIL)).status_code == 303


@pytest.mark.parametrize(
    "email",
    [SQL_DROP, SQL_OR, f"{SQL_OR}@x.example", UNICODE, NUL, SCRIPT + TEMPLATE],
    ids=["drop-table", "or-1-1", "or-1-1-address", "unicode", "nul", "markup"],
)
async def test_hostile_login_emails_are_a_wrong_login_and_change_nothing(
    portal, records, email
):
    """SQL, NUL, unicode or markup as e-mail: 400 wrong login, escaped, tables kept."""
    response = await log_in(portal, email)

    assert response.status_code == 400
    assert "e-mail or password is wrong" in response.text
    assert "portal_session" not in response.headers.get("set-cookie", "")
    assert "<script>" not in response.text
    # The template syntax is not run: no 49 outside the form's random token.
    page = re.sub(r'name="csrf_token" value="[^"]*"', "", response.text)
    assert "49" not in page
    assert tables_intact(records.kw["bind"])
    with records() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 3
        assert session.scalar(select(func.count()).select_from(Dossier)) == 3


@pytest.mark.postgres
def test_a_nul_in_the_login_email_is_a_wrong_login_on_postgresql(tmp_path):
    """PostgreSQL stores no NUL in text: asking for one must not fail the login."""
    server = "postgresql+psycopg://postgres@127.0.0.1:5432"
    name = f"dossier_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade_database(f"{server}/{name}")
        engine = make_engine(f"{server}/{name}")
        with make_session_factory(engine).begin() as session:
            assert authenticate(session, f"an{NUL}@a.example", PASSWORD) is None
            with pytest.raises(AccountError, match="is not an e-mail address"):
                create_user(session, f"an{NUL}@a.example", PASSWORD, "staff")
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


async def test_logs_of_a_login_hold_no_email_or_password(portal):
    """Login events carry the user id only: no address, password or token."""
    with capture_logs() as logs:
        await log_in(portal, A_EMAIL, "wrong password!")
        good = await log_in(portal, A_EMAIL)

    token = good.cookies["portal_session"]
    text = repr(logs)
    assert [entry["event"] for entry in logs] == [
        "portal.login_failed",
        "portal.logged_in",
    ]
    for secret in (A_EMAIL, PASSWORD, "wrong password!", token):
        assert secret not in text


async def test_session_cookie_is_secure_behind_https(settings, records, archive):
    """With an https base URL the session cookie is marked Secure."""
    https = settings.model_copy(update={"base_url": "https://dossiers.example"})
    app = create_app(
        https,
        temporal_client=RecordingTemporal(),
        session_factory=records,
        archive=archive,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://testserver"
        ) as client:
            response = await log_in(client, A_EMAIL)

    assert "secure" in response.headers["set-cookie"].lower()


async def test_the_session_token_is_stored_only_as_its_sha256(portal, records):
    """The database holds the SHA-256 of the cookie's token, never the token."""
    response = await log_in(portal, A_EMAIL)
    token = response.cookies["portal_session"]

    with records() as session:
        ids = session.scalars(select(WebSession.session_id)).all()

    assert ids == [hashlib.sha256(token.encode()).hexdigest()]


async def test_logout_ends_the_session(portal, records):
    """After logging out the old cookie opens nothing and its row is gone."""
    await log_in(portal, A_EMAIL)
    page = await portal.get("/portal")

    response = await portal.post("/portal/logout", data={"csrf_token": csrf_of(page)})

    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login"
    with records() as session:
        assert session.scalars(select(WebSession)).all() == []


async def test_an_expired_session_opens_nothing(portal, records):
    """Past its expiry a session's cookie is sent to the login page again."""
    await log_in(portal, A_EMAIL)
    with records.begin() as session:
        for row in session.scalars(select(WebSession)):
            row.expires_at = datetime(2026, 1, 1, tzinfo=UTC)

    response = await portal.get("/portal")

    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login?next=%2Fportal"


# --- anonymous and CSRF ----------------------------------------------------------


async def test_anonymous_page_request_is_sent_to_the_login_page(portal):
    """Without a session a page answers 303 to the login form, keeping the path."""
    response = await portal.get(f"/portal/dossiers/{A_TRAINING}")

    assert response.status_code == 303
    assert response.headers["location"] == (
        "/portal/login?next=%2Fportal%2Fdossiers%2F0412345614-ls-a-1"
    )


async def test_anonymous_json_request_answers_401(portal):
    """Without a session a client asking for JSON gets 401, not a redirect."""
    response = await portal.get("/portal", headers={"Accept": "application/json"})

    assert response.status_code == 401
    assert response.json()["error"] == "log in to the portal first"


@pytest.mark.parametrize(
    ("asked", "location"),
    [
        ("/portal/dossiers/x", "/portal/dossiers/x"),
        ("https://evil.example/portal", "/portal"),
        ("//evil.example/portal", "/portal"),
        ("/portal//evil.example", "/portal"),
    ],
)
async def test_login_goes_on_to_a_portal_page_only(portal, asked, location):
    """After login the visitor goes to the page asked for, never to another site."""
    page = await portal.get("/portal/login")
    form = {
        "email": A_EMAIL,
        "password": PASSWORD,
        "csrf_token": csrf_of(page),
        "next": asked,
    }

    response = await portal.post("/portal/login", data=form)

    assert response.headers["location"] == location


@pytest.mark.parametrize(
    "path", ["/portal/logout", f"/portal/dossiers/{A_TRAINING}/upload"]
)
async def test_post_without_the_csrf_token_answers_403(portal, path):
    """A logged-in POST without the session's CSRF token is refused."""
    await log_in(portal, A_EMAIL)

    response = await portal.post(
        path,
        data={"document_type": "quote", "csrf_token": "guessed"},
        files={"document": ("offerte.pdf", b"%PDF-1.4 offerte\n", "application/pdf")},
    )

    assert response.status_code == 403


async def test_login_without_the_form_token_answers_403(portal):
    """A login post that did not come from the login form is refused."""
    response = await portal.post(
        "/portal/login", data={"email": A_EMAIL, "password": PASSWORD}
    )

    assert response.status_code == 403


# --- who sees what -----------------------------------------------------------


async def test_provider_lists_only_its_own_dossiers(portal):
    """Provider A's list holds its two dossiers and not B's."""
    await log_in(portal, A_EMAIL)

    page = await portal.get("/portal", params={"provider": "0887654321"})

    assert page.status_code == 200
    assert "LS-A-1" in page.text
    assert "ADV-A-2" in page.text
    assert "LS-B-1" not in page.text


async def test_another_providers_dossier_answers_404_like_an_unknown_one(portal):
    """A asking for B's dossier id gets the same 404 as for an id nobody has."""
    await log_in(portal, A_EMAIL)

    others = await portal.get(f"/portal/dossiers/{B_TRAINING}")
    unknown = await portal.get("/portal/dossiers/0887654321-nope")

    assert others.status_code == 404
    assert others.json()["error"] == "there is no dossier '0887654321-ls-b-1'"
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "there is no dossier '0887654321-nope'"


async def test_another_providers_document_answers_404(portal):
    """A downloading B's archive key gets 404, exactly like a missing key."""
    await log_in(portal, A_EMAIL)

    response = await portal.get(f"/portal/documents/{B_INVOICE_KEY}/download")

    assert response.status_code == 404
    assert response.json()["error"] == "there is no such document"


@pytest.mark.parametrize(
    "key",
    [
        "0412345614/%2e%2e/0887654321/0887654321-ls-b-1/9f74a621e47e968f-factuur-b.pdf",
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "0412345614%2F..%2F0887654321%2F0887654321-ls-b-1",
    ],
)
async def test_path_traversal_keys_answer_404(portal, key):
    """Keys climbing out of a container find nothing: 404."""
    await log_in(portal, A_EMAIL)

    response = await portal.get(f"/portal/documents/{key}/download")

    assert response.status_code == 404


async def test_staff_see_every_providers_dossiers_and_can_filter(portal):
    """Staff list A's and B's dossiers, and only B's when filtering on B."""
    await log_in(portal, STAFF_EMAIL)

    everything = await portal.get("/portal")
    only_b = await portal.get("/portal", params={"provider": "0887654321"})

    for invoice in ("LS-A-1", "ADV-A-2", "LS-B-1"):
        assert invoice in everything.text
    assert "LS-B-1" in only_b.text
    assert "LS-A-1" not in only_b.text


async def test_staff_and_the_owner_download_a_document_with_its_bytes(portal):
    """B and staff both download B's invoice, byte for byte, as an attachment."""
    for email in (B_EMAIL, STAFF_EMAIL):
        await log_in(portal, email)

        response = await portal.get(f"/portal/documents/{B_INVOICE_KEY}/download")

        assert response.status_code == 200
        assert response.content == b"%PDF-1.4 factuur B\n"
        assert response.headers["content-disposition"].startswith(
            'attachment; filename="factuur-b.pdf"'
        )


async def test_the_dossier_page_shows_its_documents_and_step(portal):
    """B's dossier page names its step and links its archived invoice."""
    await log_in(portal, B_EMAIL)

    page = await portal.get(f"/portal/dossiers/{B_TRAINING}")

    assert page.status_code == 200
    assert '<dd id="step">payment</dd>' in page.text
    assert f"/portal/documents/{B_INVOICE_KEY}/download" in page.text
    assert '<html lang="en">' in page.text
    assert 'name="viewport"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"


# --- uploads -----------------------------------------------------------------


async def test_upload_is_archived_in_the_providers_container(portal, records, archive):
    """A quote lands under A's container and dossier with its SHA-256 recorded."""
    await log_in(portal, A_EMAIL)

    response = await upload(
        portal, A_TRAINING, "quote", "offerte café.pdf", b"%PDF-1.4 offerte\n"
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/portal/dossiers/{A_TRAINING}"
    with records() as session:
        [item] = session.scalars(
            select(ArchiveItem).where(ArchiveItem.dossier_id == A_TRAINING)
        ).all()
        events = session.scalars(select(TimelineEvent.event)).all()
    assert item.key == (
        "0412345614/0412345614-ls-a-1/204bd5b2d4d3e65d-quote-offerte_cafe.pdf"
    )
    assert item.container == "0412345614"
    assert item.sha256 == (
        "204bd5b2d4d3e65dd5dbb56c1ffba3497d6394ad5ca5fb3a8bb178d5086c24ed"
    )
    assert item.size == 17
    assert item.content_type == "application/pdf"
    assert item.retain_until == date(2036, 12, 1)
    assert archive.get(item.key) == b"%PDF-1.4 offerte\n"
    assert events == ["document.uploaded"]


async def test_upload_to_another_providers_dossier_answers_404(portal, records):
    """A cannot upload into B's dossier: 404 and nothing archived."""
    await log_in(portal, A_EMAIL)
    page = await portal.get("/portal")

    response = await portal.post(
        f"/portal/dossiers/{B_TRAINING}/upload",
        data={"csrf_token": csrf_of(page), "document_type": "quote"},
        files={"document": ("offerte.pdf", b"%PDF-1.4 offerte\n", "application/pdf")},
    )

    assert response.status_code == 404
    with records() as session:
        assert session.scalars(select(ArchiveItem.key)).all() == [B_INVOICE_KEY]


async def test_final_report_of_an_advice_is_signalled_to_its_workflow(portal, temporal):
    """An advice's final report goes to its workflow as upload_final_report."""
    await log_in(portal, A_EMAIL)

    await upload(
        portal, A_ADVICE, "final_report", "eindrapport.pdf", b"%PDF-1.4 eindrapport\n"
    )

    assert temporal.signals == [
        (
            "dossier-0412345614-adv-a-2",
            "upload_final_report",
            FinalReportInput(
                "0412345614/0412345614-adv-a-2/"
                "4b63b88afc3f341c-final_report-eindrapport.pdf",
                "eindrapport.pdf",
            ),
        )
    ]


async def test_a_quote_sends_no_signal(portal, temporal):
    """Documents other than an advice's final report do not touch the workflow."""
    await log_in(portal, A_EMAIL)

    await upload(portal, A_ADVICE, "quote", "offerte.pdf", b"%PDF-1.4 offerte\n")

    assert temporal.signals == []


async def test_final_report_without_temporal_is_archived_with_a_warning(
    portal, app, records
):
    """With no Temporal client the report is archived and the signal skipped."""
    app.state.services.client = None
    await log_in(portal, A_EMAIL)

    with capture_logs() as logs:
        response = await upload(
            portal, A_ADVICE, "final_report", "eindrapport.pdf", b"%PDF-1.4 report"
        )

    assert response.status_code == 303
    assert {
        "event": "portal.final_report_not_signalled",
        "dossier_id": "0412345614-adv-a-2",
        "log_level": "warning",
    } in logs


async def test_upload_without_a_document_type_says_what_is_missing(portal):
    """A file without its kind of document answers 422 and asks for it."""
    await log_in(portal, A_EMAIL)

    response = await upload(portal, A_TRAINING, "", "offerte.pdf", b"%PDF-1.4")

    assert response.status_code == 422
    assert "choose what kind of document this is" in response.text


async def test_upload_over_20_mb_answers_413(portal):
    """A document one byte over 20 MB is refused with the limit named."""
    await log_in(portal, A_EMAIL)

    response = await upload(
        portal, A_TRAINING, "other", "big.pdf", b"x" * (20 * 1024 * 1024 + 1)
    )

    assert response.status_code == 413
    assert "the limit is 20 MB" in response.text
