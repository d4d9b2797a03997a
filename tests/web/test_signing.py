"""Signing through emailed links, on a real SQLite database, archive and Temporal.

Each dossier runs on the time-skipping test server with the real activities
until it waits for the terms; the link is read from the mail in the outbox.
The app is called in-process through ASGI, from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from markupsafe import escape
from sqlalchemy import select, update
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from activities.dossier import DossierActivities
from adapters.archive import Archive, LocalArchive
from adapters.inbound import receive_mail
from adapters.links import SIGN_LINK_SALT, sign_link_id, sign_token
from adapters.mail import OutboxMailer
from adapters.records import ArchiveItem, Dossier, SignLink, TimelineEvent
from kmo.rules import retention_until
from tests.factories import training_dossier
from tests.hostile import (
    NUL,
    SCRIPT,
    SQL_DROP,
    SQL_OR,
    TEMPLATE,
    UNICODE,
    tables_intact,
)
from tests.s3 import assert_every_item_on_s3
from web import signing
from web.app import create_app
from worker import build_worker
from workflows.dossier import DossierWorkflow
from workflows.messages import (
    ApplicationInput,
    DepositInput,
    Document,
    Participant,
    PaymentInput,
    SignatureInput,
    Step,
)

USER_AGENT = "TestBrowser/1.0 (signing test)"
_LINK = re.compile(r"/sign/([A-Za-z0-9_.\-]+)")
_NONCE = re.compile(r'name="nonce" value="([^"]+)"')
_ARTICLE = re.compile(r'<article id="document".*?</article>', re.DOTALL)


@dataclass
class TermsLink:
    """A dossier waiting for its terms, and the link the client was mailed."""

    handle: WorkflowHandle
    dossier_id: str
    link_id: str
    path: str


@pytest.fixture
async def web(
    time_skipping_env, settings, session_factory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and a worker with the real activities."""
    archive = LocalArchive(settings.archive_dir)
    async with serving(time_skipping_env, settings, session_factory, archive) as http:
        yield http


@pytest.fixture
async def s3_web(
    time_skipping_env, settings, session_factory, s3_archive
) -> AsyncIterator[httpx.AsyncClient]:
    """The same, with app and worker archiving to S3 on the moto server."""
    async with serving(
        time_skipping_env, settings, session_factory, s3_archive
    ) as http:
        yield http


@asynccontextmanager
async def serving(
    time_skipping_env, settings, session_factory, archive: Archive
) -> AsyncIterator[httpx.AsyncClient]:
    activities = DossierActivities(
        settings=settings,
        session_factory=session_factory,
        archive=archive,
        mailer=OutboxMailer(settings.outbox_dir),
    )
    app = create_app(
        settings,
        temporal_client=time_skipping_env.client,
        session_factory=session_factory,
        archive=archive,
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"User-Agent": USER_AGENT},
    )
    async with (
        build_worker(time_skipping_env.client, settings, activities),
        app.router.lifespan_context(app),
        http,
    ):
        yield http


@pytest.fixture
async def terms(time_skipping_env, settings, web) -> AsyncIterator[TermsLink]:
    """A training dossier of its own, at the terms step, with its mailed link."""
    link = await start_at_terms(time_skipping_env.client, settings)
    yield link
    try:
        await link.handle.terminate("test done")
    except RPCError:
        pass  # already closed


async def start_at_terms(client, settings, language: str = "nl") -> TermsLink:
    number = f"SIGN-{uuid.uuid4().hex[:8].upper()}"
    dossier_id = f"0412345614-{number.lower()}"
    base = training_dossier()
    dossier = training_dossier(
        dossier_id=dossier_id,
        invoice_number=number,
        client=replace(base.client, has_platform_account=True, language=language),
    )
    handle = await client.start_workflow(
        DossierWorkflow.run,
        dossier,
        id=f"dossier-{dossier_id}",
        task_queue=settings.task_queue,
    )
    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-1"))
    path = await _terms_link_from_outbox(Path(settings.outbox_dir), dossier_id)
    return TermsLink(
        handle, dossier_id, sign_link_id(dossier_id, "terms", "client"), path
    )


async def _nth_terms_link(outbox: Path, count: int) -> str:
    """The link of the `count`-th terms mail in the test's own outbox."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        paths = sorted(outbox.glob("[!.]*.eml"), key=lambda p: p.stat().st_mtime_ns)
        mails = [
            email.message_from_bytes(path.read_bytes(), policy=policy.default)
            for path in paths
        ]
        terms = [m for m in mails if m["X-Dossier-Template"] == "terms"]
        if len(terms) >= count:
            text = terms[count - 1].get_body(preferencelist=("plain",)).get_content()
            return "/sign/" + _LINK.search(text).group(1)
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} terms mails in {outbox}")


async def _terms_link_from_outbox(outbox: Path, dossier_id: str) -> str:
    """The link in the terms mail; the outbox is the test's own."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in outbox.glob("[!.]*.eml"):  # not the files still being written
            mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if mail["X-Dossier-Template"] == "terms":
                text = mail.get_body(preferencelist=("plain",)).get_content()
                return "/sign/" + _LINK.search(text).group(1)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no terms mail for {dossier_id} in {outbox}")


async def open_form(web: httpx.AsyncClient, path: str) -> tuple[str, str]:
    """GET the signing page: (the nonce of its form, the document's HTML)."""
    page = await web.get(path)
    assert page.status_code == 200, page.text
    return _NONCE.search(page.text).group(1), _ARTICLE.search(page.text).group(0)


async def submit(
    web: httpx.AsyncClient,
    path: str,
    nonce: str,
    full_name: str = "An Peeters",
    consent: bool = True,
) -> httpx.Response:
    form = {"nonce": nonce, "full_name": full_name}
    if consent:
        form["consent"] = "yes"
    return await web.post(path, data=form)


def link_row(session_factory, link_id: str) -> SignLink:
    with session_factory() as session:
        return session.get_one(SignLink, link_id)


def events(session_factory, dossier_id: str, event: str) -> list[TimelineEvent]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(TimelineEvent).where(
                    TimelineEvent.dossier_id == dossier_id,
                    TimelineEvent.event == event,
                )
            )
        )


def archived(session_factory, dossier_id: str, suffix: str) -> list[ArchiveItem]:
    with session_factory() as session:
        rows = session.scalars(
            select(ArchiveItem).where(ArchiveItem.dossier_id == dossier_id)
        )
        return [row for row in rows if row.name.endswith(suffix)]


async def signals(
    handle: WorkflowHandle, client, document: Document | None = None, at_least: int = 1
) -> list[SignatureInput]:
    """The record_signature signals in the workflow's history, decoded.

    Signals that arrive while a workflow task runs reach the history when the
    task ends, so this waits (up to 10 s) until `at_least` signals (of
    `document`, when given) are there; it returns what it found either way.
    """
    for _ in range(200):
        found = []
        async for event in handle.fetch_history_events():
            attributes = event.workflow_execution_signaled_event_attributes
            if attributes.signal_name == "record_signature":
                [signature] = await client.data_converter.decode(
                    attributes.input.payloads, [SignatureInput]
                )
                found.append(signature)
        counted = [s for s in found if document in (None, s.document)]
        if len(counted) >= at_least:
            break
        await asyncio.sleep(0.05)
    return found


async def step_becomes(handle: WorkflowHandle, step: Step) -> None:
    for _ in range(200):
        status = await handle.query(DossierWorkflow.status)
        if status.step == step:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the dossier stayed at {status.step}, not {step}")


# --- the page ----------------------------------------------------------------


async def test_page_shows_the_terms_of_the_dossier_in_dutch(web, terms):
    """The page shows the Dutch terms with invoice, provider and client, and a form."""
    page = await web.get(terms.path)

    assert page.status_code == 200
    assert '<html lang="nl">' in page.text
    assert '<meta name="viewport"' in page.text
    assert "Voorwaarden van de KMO-portefeuille" in page.text
    invoice_number = terms.dossier_id.removeprefix("0412345614-").upper()
    assert f"<dt>Factuur</dt><dd>{invoice_number}</dd>" in page.text
    assert "Leerhuis Schelde BV (erkend dienstverlener DV.O214567)" in page.text
    assert "Bakkerij Peeters BV (ondernemingsnummer 0511.223.355)" in page.text
    assert '<label for="full_name">Uw volledige naam</label>' in page.text
    assert '<label for="consent">' in page.text
    assert not re.search(r"<script|<link|src=|url\(", page.text)  # no assets
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_page_is_in_the_clients_language(time_skipping_env, settings, web):
    """A French-speaking client reads the terms in French."""
    link = await start_at_terms(time_skipping_env.client, settings, language="fr")

    page = await web.get(link.path)
    await link.handle.terminate("test done")

    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "Conditions du portefeuille PME" in page.text


# --- signing -----------------------------------------------------------------


async def test_signing_uses_the_link_archives_evidence_and_moves_the_dossier_on(
    time_skipping_env, settings, session_factory, web, terms
):
    """Signing marks the link used, archives PDF and evidence, signals the workflow."""
    nonce, document = await open_form(web, terms.path)

    response = await submit(web, terms.path, nonce)

    assert response.status_code == 200
    assert "Bedankt, uw handtekening is ontvangen" in response.text
    assert link_row(session_factory, terms.link_id).used_at is not None
    archive = LocalArchive(settings.archive_dir)
    [evidence_row] = archived(session_factory, terms.dossier_id, ".json")
    evidence = json.loads(archive.get(evidence_row.key))
    assert evidence["link_id"] == terms.link_id
    assert evidence["typed_name"] == "An Peeters"
    assert evidence["consent"] is True
    assert evidence["client_ip"] == "127.0.0.1"
    assert evidence["user_agent"] == USER_AGENT
    assert evidence["document_sha256"] == hashlib.sha256(document.encode()).hexdigest()
    assert evidence_row.key.startswith(f"0412345614/{terms.dossier_id}/")
    [pdf_row] = archived(session_factory, terms.dossier_id, ".pdf")
    pdf = archive.get(pdf_row.key)
    assert pdf.startswith(b"%PDF")
    assert evidence["pdf_archive_key"] == pdf_row.key
    assert evidence["pdf_sha256"] == hashlib.sha256(pdf).hexdigest() == pdf_row.sha256
    shown = archive.get(evidence["document_archive_key"])
    assert hashlib.sha256(shown).hexdigest() == evidence["document_sha256"]
    [signature] = await signals(terms.handle, time_skipping_env.client)
    assert (signature.link_id, signature.evidence_key) == (terms.link_id, pdf_row.key)
    assert signature.participant is None
    assert len(events(session_factory, terms.dossier_id, "signature.recorded")) == 1
    await step_becomes(terms.handle, Step.PAYMENT)


async def test_a_name_and_consent_are_needed(web, session_factory, terms):
    """Without a name or consent the form comes back (422), naming both; unsigned."""
    nonce, _ = await open_form(web, terms.path)

    response = await submit(web, terms.path, nonce, full_name="   ", consent=False)

    assert response.status_code == 422
    assert "Typ uw volledige naam." in response.text
    assert "Vink het vakje aan om te bevestigen dat u ondertekent." in response.text
    assert 'aria-invalid="true"' in response.text
    assert link_row(session_factory, terms.link_id).used_at is None


async def test_a_document_changed_since_it_was_shown_is_shown_again(
    web, session_factory, terms
):
    """If the dossier changed after the page was shown, the new text comes back."""
    nonce, _ = await open_form(web, terms.path)
    with session_factory.begin() as session:
        session.execute(
            update(Dossier)
            .where(Dossier.dossier_id == terms.dossier_id)
            .values(client_name="Bakkerij Peeters-Janssens BV")
        )

    response = await submit(web, terms.path, nonce)

    assert response.status_code == 409
    assert "Het document is gewijzigd" in response.text
    assert "Bakkerij Peeters-Janssens BV" in response.text
    assert link_row(session_factory, terms.link_id).used_at is None


# --- refusals ----------------------------------------------------------------


async def test_a_tampered_token_gets_a_plain_400(web, terms):
    """A token with one character changed answers 400 without saying why."""
    token = terms.path.removeprefix("/sign/")
    position = len(token) - 6
    changed = "A" if token[position] != "A" else "B"
    tampered = token[:position] + changed + token[position + 1 :]

    response = await web.get(f"/sign/{tampered}")

    assert response.status_code == 400
    assert "Deze link is niet geldig" in response.text
    assert "verlopen" not in response.text
    assert tampered not in response.text


async def test_an_expired_link_offers_a_new_one(web, session_factory, terms):
    """A link past its date shows 'expired'; asking for a new one is recorded."""
    nonce, _ = await open_form(web, terms.path)
    with session_factory.begin() as session:
        session.execute(
            update(SignLink)
            .where(SignLink.link_id == terms.link_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    page = await web.get(terms.path)
    submitted = await submit(web, terms.path, nonce)
    renew_nonce = _NONCE.search(page.text).group(1)
    renewal = await web.post(f"{terms.path}/renew", data={"nonce": renew_nonce})

    assert page.status_code == 410
    assert "Deze link is verlopen" in page.text
    assert f'action="{terms.path}/renew"' in page.text
    assert submitted.status_code == 410
    assert link_row(session_factory, terms.link_id).used_at is None
    assert renewal.status_code == 200
    assert "Uw aanvraag is genoteerd" in renewal.text
    [event] = events(session_factory, terms.dossier_id, "link.renewal_requested")
    assert event.detail == f"terms link {terms.link_id}"


async def test_asking_for_a_new_link_mails_one_that_opens(
    web, settings, session_factory, terms
):
    """The renewal mails the terms again; its link opens the form. Once a day."""
    with session_factory.begin() as session:
        session.execute(
            update(SignLink)
            .where(SignLink.link_id == terms.link_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    page = await web.get(terms.path)
    renew_nonce = _NONCE.search(page.text).group(1)

    for _ in range(2):  # a second press the same day asks nothing more
        renewal = await web.post(f"{terms.path}/renew", data={"nonce": renew_nonce})
        assert renewal.status_code == 200
    fresh = await _nth_terms_link(Path(settings.outbox_dir), 2)
    reopened = await web.get(fresh)

    assert reopened.status_code == 200
    assert _NONCE.search(reopened.text)
    status = await terms.handle.query(DossierWorkflow.status)
    requests = [e for e in status.timeline if e.event == "mail.resend_requested"]
    assert [e.detail for e in requests] == ["terms by signer: link expired"]


async def test_a_token_older_than_the_link_validity_is_expired(web, settings, terms):
    """A genuine token made 31 days ago counts as expired, whatever the record says."""

    class MonthAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 31 * 24 * 3600

    secret = settings.link_secret.get_secret_value()
    old = URLSafeTimedSerializer(secret, salt=SIGN_LINK_SALT, signer=MonthAgo).dumps(
        {"l": terms.link_id}
    )

    response = await web.get(f"/sign/{old}")

    assert response.status_code == 410
    assert "Deze link is verlopen" in response.text


async def test_a_used_link_says_already_signed(web, terms):
    """After signing, the link shows 'already signed' and a second submit is 409."""
    nonce, _ = await open_form(web, terms.path)
    first = await submit(web, terms.path, nonce)

    again = await submit(web, terms.path, nonce)
    page = await web.get(terms.path)

    assert first.status_code == 200
    assert again.status_code == 409
    assert "Dit document is al ondertekend" in again.text
    assert page.status_code == 200
    assert "Dit document is al ondertekend" in page.text


async def test_the_form_of_one_link_cannot_sign_another(
    web, settings, session_factory, terms
):
    """A form rendered for one signer's link is refused (400) on another's link."""
    other_id = sign_link_id(terms.dossier_id, "terms", "Jan Janssens")
    with session_factory.begin() as session:
        session.add(
            SignLink(
                link_id=other_id,
                dossier_id=terms.dossier_id,
                document="terms",
                signer="Jan Janssens",
                expires_at=datetime.now(UTC) + timedelta(days=30),
            )
        )
    other_path = (
        f"/sign/{sign_token(settings.link_secret.get_secret_value(), other_id)}"
    )
    nonce, _ = await open_form(web, terms.path)

    response = await submit(web, other_path, nonce, full_name="Jan Janssens")

    assert response.status_code == 400
    assert link_row(session_factory, other_id).used_at is None
    assert link_row(session_factory, terms.link_id).used_at is None


async def test_a_submit_without_a_valid_nonce_is_refused(web, session_factory, terms):
    """A POST with a forged nonce answers 400 and signs nothing."""
    response = await submit(web, terms.path, "forged.nonce")

    assert response.status_code == 400
    assert link_row(session_factory, terms.link_id).used_at is None


async def test_two_racing_submits_make_one_signature(
    time_skipping_env, web, session_factory, terms
):
    """Two submits at once: one signs (200), the other is told it is signed (409)."""
    nonce, _ = await open_form(web, terms.path)

    responses = await asyncio.gather(
        submit(web, terms.path, nonce), submit(web, terms.path, nonce)
    )

    assert sorted(r.status_code for r in responses) == [200, 409]
    assert len(events(session_factory, terms.dossier_id, "signature.recorded")) == 1
    assert len(archived(session_factory, terms.dossier_id, ".pdf")) == 1
    assert len(await signals(terms.handle, time_skipping_env.client)) == 1


async def test_a_document_not_signable_online_says_so(
    web, settings, session_factory, terms
):
    """A link to a document this page does not know answers 501."""
    link_id = sign_link_id(terms.dossier_id, "agreement", "client")
    with session_factory.begin() as session:
        session.add(
            SignLink(
                link_id=link_id,
                dossier_id=terms.dossier_id,
                document="agreement",
                signer="client",
                expires_at=datetime.now(UTC) + timedelta(days=30),
            )
        )
    token = sign_token(settings.link_secret.get_secret_value(), link_id)

    response = await web.get(f"/sign/{token}")

    assert response.status_code == 501
    assert "kan nog niet online ondertekend worden" in response.text


# --- attendance list and satisfaction form -----------------------------------


async def start_at_attendance(
    env, settings, session_factory, participants: list[Participant]
) -> tuple[TermsLink, list[date]]:
    """A two-day training past its last day, waiting for its attendance list.

    The days are the two before the test server's today, so no timer must pass.
    """
    today = (await env.get_current_time()).date()
    days = [today - timedelta(days=3), today - timedelta(days=2)]
    number = f"ATT-{uuid.uuid4().hex[:8].upper()}"
    dossier_id = f"0412345614-{number.lower()}"
    base = training_dossier()
    dossier = training_dossier(
        dossier_id=dossier_id,
        invoice_number=number,
        client=replace(base.client, has_platform_account=True),
        title="Brood bakken met zuurdesem",
        start_date=days[0],
        end_date=days[1],
        participants=participants,
        session_dates=days,
    )
    handle = await env.client.start_workflow(
        DossierWorkflow.run,
        dossier,
        id=f"dossier-{dossier_id}",
        task_queue=settings.task_queue,
    )
    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-1"))
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.TERMS, "An Peeters")
    )
    await handle.signal(DossierWorkflow.record_deposit, DepositInput())
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    return TermsLink(handle, dossier_id, "", ""), days


async def link_path(settings, session_factory, link_id: str) -> str:
    """The path of a link once the workflow made it (the mail holds the same)."""
    for _ in range(300):
        with session_factory() as session:
            if session.get(SignLink, link_id) is not None:
                secret = settings.link_secret.get_secret_value()
                return f"/sign/{sign_token(secret, link_id)}"
        await asyncio.sleep(0.1)
    raise AssertionError(f"no sign link {link_id}")


def form_of(page: str, name: str) -> str:
    """The nonce of the shared list's form for the participant `name`."""
    start = page.index(f'<button type="submit">Onderteken voor {name}</button>')
    return _NONCE.findall(page[:start])[-1]


def row_suffix(name: str) -> str:
    return "_" + hashlib.sha256(name.encode()).hexdigest()[:12]


async def test_a_participants_own_link_signs_each_training_day(
    time_skipping_env, settings, session_factory, web
):
    """A participant's link signs their row for both days; the workflow moves on."""
    dossier, days = await start_at_attendance(
        time_skipping_env,
        settings,
        session_factory,
        [Participant("Jan Janssens", "jan@bakkerij-peeters.example")],
    )
    link_id = sign_link_id(dossier.dossier_id, "attendance", "Jan Janssens")
    path = await link_path(settings, session_factory, link_id)
    nonce, document = await open_form(web, path)

    response = await submit(web, path, nonce, full_name="Jan Janssens")

    assert response.status_code == 200, response.text
    assert "Aanwezigheidslijst" in document
    assert "<td>Jan Janssens</td><td>Bakkerij Peeters BV</td>" in document
    assert f"<td>Brood bakken met zuurdesem</td><td>{days[0]}</td>" in document
    assert f"<td>{days[1]}</td>" in document
    assert link_row(session_factory, link_id).used_at is not None
    found = await signals(
        dossier.handle, time_skipping_env.client, Document.ATTENDANCE, at_least=2
    )
    attendance = [s for s in found if s.document == Document.ATTENDANCE]
    assert sorted((s.participant, s.day) for s in attendance) == [
        ("Jan Janssens", days[0]),
        ("Jan Janssens", days[1]),
    ]
    [evidence_row] = archived(session_factory, dossier.dossier_id, ".json")
    evidence = json.loads(LocalArchive(settings.archive_dir).get(evidence_row.key))
    assert [row["day"] for row in evidence["attendance"]] == [
        days[0].isoformat(),
        days[1].isoformat(),
    ]
    await step_becomes(dossier.handle, Step.SATISFACTION)
    await dossier.handle.terminate("test done")


async def test_the_clients_link_signs_two_participants_in_turn(
    time_skipping_env, settings, session_factory, web
):
    """The client's link lists both participants; it is used once both signed."""
    dossier, days = await start_at_attendance(
        time_skipping_env,
        settings,
        session_factory,
        [Participant("An Peeters"), Participant("Piet Peeters")],
    )
    link_id = sign_link_id(dossier.dossier_id, "attendance", "client")
    path = await link_path(settings, session_factory, link_id)
    page = await web.get(path)
    an = {"nonce": form_of(page.text, "An Peeters")}
    an[f"full_name{row_suffix('An Peeters')}"] = "An Peeters"
    an[f"consent{row_suffix('An Peeters')}"] = "yes"

    first = await web.post(path, data=an)
    again = await web.post(path, data=an)
    piet = {"nonce": form_of(first.text, "Piet Peeters")}
    piet[f"full_name{row_suffix('Piet Peeters')}"] = "Piet Peeters"
    piet[f"consent{row_suffix('Piet Peeters')}"] = "yes"
    second = await web.post(path, data=piet)

    assert page.status_code == 200
    assert '<label for="full_name' in page.text
    assert first.status_code == 200, first.text
    assert "De handtekening is ontvangen" in first.text
    assert "Onderteken voor An Peeters" not in first.text
    assert again.status_code == 409
    assert second.status_code == 200, second.text
    assert "Bedankt, uw handtekening is ontvangen" in second.text
    assert link_row(session_factory, link_id).used_at is not None
    assert len(archived(session_factory, dossier.dossier_id, ".pdf")) == 2
    found = await signals(
        dossier.handle, time_skipping_env.client, Document.ATTENDANCE, at_least=4
    )
    assert sorted(
        (s.participant, s.day) for s in found if s.document == Document.ATTENDANCE
    ) == [
        ("An Peeters", days[0]),
        ("An Peeters", days[1]),
        ("Piet Peeters", days[0]),
        ("Piet Peeters", days[1]),
    ]
    await step_becomes(dossier.handle, Step.SATISFACTION)
    await dossier.handle.terminate("test done")


async def test_the_satisfaction_form_needs_every_rating_and_keeps_the_answers(
    time_skipping_env, settings, session_factory, web
):
    """A missing rating is 422; the answers go into the evidence and signed PDF."""
    dossier, days = await start_at_attendance(
        time_skipping_env,
        settings,
        session_factory,
        [Participant("Jan Janssens", "jan@bakkerij-peeters.example")],
    )
    for day in days:
        await dossier.handle.signal(
            DossierWorkflow.record_signature,
            SignatureInput(Document.ATTENDANCE, "Jan", "Jan Janssens", day),
        )
    await step_becomes(dossier.handle, Step.SATISFACTION)
    link_id = sign_link_id(dossier.dossier_id, "satisfaction", "client")
    path = await link_path(settings, session_factory, link_id)
    nonce, _ = await open_form(web, path)
    answers = {
        "nonce": nonce,
        "full_name": "An Peeters",
        "consent": "yes",
        "q_trainer": "5",
        "q_organisation": "4",
        "q_usefulness": "4",
        "q_remark": "Goed gegeven.",
    }

    missing = await web.post(path, data=answers)
    signed = await web.post(path, data={**answers, "q_content": "3"})

    assert missing.status_code == 422
    assert "Kies een score van 1 tot 5." in missing.text
    assert 'value="5" checked' in missing.text  # given answers stay filled in
    assert signed.status_code == 200, signed.text
    archive = LocalArchive(settings.archive_dir)
    [evidence_row] = archived(session_factory, dossier.dossier_id, ".json")
    evidence = json.loads(archive.get(evidence_row.key))
    assert evidence["answers"] == {
        "content": 3,
        "trainer": 5,
        "organisation": 4,
        "usefulness": 4,
        "remark": "Goed gegeven.",
    }
    [pdf_row] = archived(session_factory, dossier.dossier_id, ".pdf")
    pdf = archive.get(pdf_row.key)
    assert evidence["pdf_sha256"] == hashlib.sha256(pdf).hexdigest() == pdf_row.sha256
    result = await asyncio.wait_for(dossier.handle.result(), timeout=60)
    assert result.outcome == Step.CLOSED


async def test_a_providers_own_questions_are_asked(
    time_skipping_env, settings, session_factory, web
):
    """A provider's satisfaction file replaces the default questions."""
    folder = settings.data_dir / "satisfaction"
    folder.mkdir(parents=True)
    (folder / "0412345614.json").write_text(
        json.dumps(
            {
                "questions": [
                    {
                        "id": "recommend",
                        "kind": "rating",
                        "label": {
                            "nl": "Zou u ons aanraden?",
                            "fr": "Nous recommanderiez-vous ?",
                            "en": "Would you recommend us?",
                        },
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    dossier, days = await start_at_attendance(
        time_skipping_env,
        settings,
        session_factory,
        [Participant("Jan Janssens", "jan@bakkerij-peeters.example")],
    )
    for day in days:
        await dossier.handle.signal(
            DossierWorkflow.record_signature,
            SignatureInput(Document.ATTENDANCE, "Jan", "Jan Janssens", day),
        )
    link_id = sign_link_id(dossier.dossier_id, "satisfaction", "client")
    path = await link_path(settings, session_factory, link_id)

    page = await web.get(path)
    await dossier.handle.terminate("test done")

    assert page.status_code == 200
    assert "<legend>Zou u ons aanraden?</legend>" in page.text
    assert "q_content" not in page.text
    assert not re.search(r"<script|<link|src=|url\(", page.text)  # no assets


# --- on S3 -------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "invoices"
ANSWERS = {
    "q_content": "3",
    "q_trainer": "5",
    "q_organisation": "4",
    "q_usefulness": "4",
    "q_remark": "Goed gegeven.",
}


async def sign_on_page(web, settings, session_factory, link_id: str, **form) -> None:
    """Open the link's page once the workflow made it, and sign it as An Peeters."""
    path = await link_path(settings, session_factory, link_id)
    nonce, _ = await open_form(web, path)
    fields = {"nonce": nonce, "full_name": "An Peeters", "consent": "yes", **form}
    response = await web.post(path, data=fields)
    assert response.status_code == 200, response.text


def evidence_of(archive: Archive, items: list[ArchiveItem], document: str) -> dict:
    [row] = [
        i
        for i in items
        if i.name.startswith(f"signed-{document}-") and i.name.endswith(".json")
    ]
    return json.loads(archive.get(row.key))


async def test_an_advice_from_intake_to_close_archives_everything_locked_on_s3(
    time_skipping_env, settings, session_factory, s3_archive, s3_web
):
    """Invoice, mails in and out, signed documents, report: locked to 2036-06-01."""
    from starter.intake import IntakeService, UploadDetails

    number = f"CVA-{uuid.uuid4().hex[:8].upper()}"
    invoice = (EXAMPLES / "advice-cyber-6m.xml").read_bytes()
    invoice = invoice.replace(b"CVA/26/031", number.encode())
    intake = IntakeService(
        settings,
        time_skipping_env.client,
        session_factory,
        s3_archive,
        search_attributes=False,
    )
    details = UploadDetails(has_platform_account=True)
    submitted = await intake.submit(invoice, "factuur.xml", "application/xml", details)
    again = await intake.submit(invoice, "factuur.xml", "application/xml", details)
    dossier_id = submitted.dossier_id
    handle = time_skipping_env.client.get_workflow_handle_for(
        DossierWorkflow.run, submitted.workflow_id
    )
    report = b"%PDF-1.4 eindrapport cyberveiligheid\n"
    reply = EmailMessage()
    reply["From"] = "sofie.desmet@drukkerij-desmet.example"
    reply["To"] = f"dossier+{dossier_id}@containers.{settings.mail_domain}"
    reply["Subject"] = "Vraag over het dossier"
    reply.set_content("Wanneer start het advies?")
    reply.add_attachment(
        b"%PDF-1.4 planning", maintype="application", subtype="pdf", filename="p.pdf"
    )
    received = await receive_mail(
        reply,
        recipients=[reply["To"]],
        archive=s3_archive,
        session_factory=session_factory,
        intake=intake,
        mail_domain=settings.mail_domain,
    )
    try:
        await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-1"))
        await sign_on_page(
            s3_web,
            settings,
            session_factory,
            sign_link_id(dossier_id, "terms", "client"),
        )
        await step_becomes(handle, Step.PAYMENT)
        await handle.signal(DossierWorkflow.record_payment, PaymentInput())
        await sign_on_page(
            s3_web,
            settings,
            session_factory,
            sign_link_id(dossier_id, "satisfaction", "client"),
            **ANSWERS,
        )
        await step_becomes(handle, Step.FINAL_REPORT)
        uploaded = await s3_web.post(
            f"/api/dossiers/{dossier_id}/documents",
            data={"type": "final_report"},
            files={"document": ("eindrapport.pdf", report, "application/pdf")},
        )
        assert uploaded.status_code == 201, uploaded.text
        result = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        try:
            await handle.terminate("test done")
        except RPCError:
            pass  # closed already

    assert result.outcome == Step.CLOSED
    assert again.created is False
    assert received.dossier_id == dossier_id
    items = assert_every_item_on_s3(
        s3_archive, session_factory, {dossier_id: date(2036, 6, 1)}
    )
    names = sorted(re.sub(r"-[0-9a-f]{16,}\.", "-<id>.", i.name) for i in items)
    assert names == [
        "01-p.pdf",
        "application-0.eml",
        "deposit-0.eml",
        "factuur.xml",
        "final_report-0.eml",
        "final_report-eindrapport.pdf",
        "final_report_request-0.eml",
        "mail.eml",
        "satisfaction-0.eml",
        "signed-satisfaction-<id>.html",
        "signed-satisfaction-<id>.json",
        "signed-satisfaction-<id>.pdf",
        "signed-terms-<id>.html",
        "signed-terms-<id>.json",
        "signed-terms-<id>.pdf",
        "terms-0.eml",
    ]
    by_name = {i.name: i for i in items}
    assert s3_archive.get(by_name["factuur.xml"].key) == invoice
    assert s3_archive.get(by_name["final_report-eindrapport.pdf"].key) == report
    mail = email.message_from_bytes(
        s3_archive.get(by_name["final_report-0.eml"].key), policy=policy.default
    )
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content() == report
    for document in ("terms", "satisfaction"):
        evidence = evidence_of(s3_archive, items, document)
        pdf = s3_archive.get(evidence["pdf_archive_key"])
        shown = s3_archive.get(evidence["document_archive_key"])
        assert hashlib.sha256(pdf).hexdigest() == evidence["pdf_sha256"]
        assert hashlib.sha256(shown).hexdigest() == evidence["document_sha256"]


async def test_a_training_signed_on_its_pages_keeps_lists_and_certificate_on_s3(
    time_skipping_env, settings, session_factory, s3_archive, s3_web
):
    """Attendance, satisfaction and the certificate: locked 10 years from day one."""
    dossier, days = await start_at_attendance(
        time_skipping_env,
        settings,
        session_factory,
        [Participant("An Peeters", "an.peeters@bakkerij-peeters.example")],
    )
    try:
        await sign_on_page(
            s3_web,
            settings,
            session_factory,
            sign_link_id(dossier.dossier_id, "attendance", "An Peeters"),
        )
        await sign_on_page(
            s3_web,
            settings,
            session_factory,
            sign_link_id(dossier.dossier_id, "satisfaction", "client"),
            **ANSWERS,
        )
        result = await asyncio.wait_for(dossier.handle.result(), timeout=60)
    finally:
        try:
            await dossier.handle.terminate("test done")
        except RPCError:
            pass  # closed already

    assert result.outcome == Step.CLOSED
    items = assert_every_item_on_s3(
        s3_archive, session_factory, {dossier.dossier_id: retention_until(days[0])}
    )
    names = sorted(re.sub(r"-[0-9a-f]{16,}\.", "-<id>.", i.name) for i in items)
    assert names == [
        "application-0.eml",
        "attendance-0.eml",
        "certificaat-An Peeters.pdf",
        "certificate-1-0.eml",
        "deposit-0.eml",
        "satisfaction-0.eml",
        "signed-attendance-<id>.html",
        "signed-attendance-<id>.json",
        "signed-attendance-<id>.pdf",
        "signed-satisfaction-<id>.html",
        "signed-satisfaction-<id>.json",
        "signed-satisfaction-<id>.pdf",
        "terms-0.eml",
    ]
    attendance = evidence_of(s3_archive, items, "attendance")
    assert [row["day"] for row in attendance["attendance"]] == [
        days[0].isoformat(),
        days[1].isoformat(),
    ]


# --- hostile text: the typed name and the answers ------------------------------

HOSTILE_NAME = f"{SQL_DROP} {SQL_OR} {SCRIPT}{TEMPLATE} {UNICODE}"


@pytest.fixture
def pdf_sources(monkeypatch) -> list[str]:
    """The HTML each signed PDF is made from, kept as WeasyPrint gets it."""
    sources: list[str] = []
    real = signing.weasyprint

    def html(*, string: str):
        sources.append(string)
        return real.HTML(string=string)

    monkeypatch.setattr(signing, "weasyprint", SimpleNamespace(HTML=html))
    return sources


@pytest.mark.parametrize(
    "name", [HOSTILE_NAME, f"{NUL} Jr."], ids=["sql-markup-unicode", "nul"]
)
async def test_a_hostile_typed_name_is_kept_verbatim_and_escaped_in_the_pdf(
    time_skipping_env, settings, session_factory, web, terms, pdf_sources, name
):
    """SQL, markup, Jinja syntax and unicode as the name: stored as typed (a NUL
    dropped), shown as text in the signed PDF, never run; the tables stay."""
    nonce, _ = await open_form(web, terms.path)

    response = await submit(web, terms.path, nonce, full_name=name)
    name = name.replace("\x00", "")

    assert response.status_code == 200, response.text
    archive = LocalArchive(settings.archive_dir)
    [evidence_row] = archived(session_factory, terms.dossier_id, ".json")
    assert json.loads(archive.get(evidence_row.key))["typed_name"] == name
    [source] = pdf_sources
    assert f"<td>{escape(name)}</td>" in source
    assert SCRIPT not in source
    assert "{{ 7*7 }}" in source or TEMPLATE not in name
    [signature] = await signals(terms.handle, time_skipping_env.client)
    assert signature.signer_name == name
    assert tables_intact(session_factory.kw["bind"])
    with session_factory() as session:
        assert session.get(Dossier, terms.dossier_id) is not None


async def test_hostile_satisfaction_answers_are_kept_verbatim_and_escaped(
    time_skipping_env, settings, session_factory, web, pdf_sources
):
    """A remark of SQL, markup and Jinja syntax is stored as typed and printed
    as text; a rating that is SQL is refused (422) and nothing is signed."""
    dossier, days = await start_at_attendance(
        time_skipping_env,
        settings,
        session_factory,
        [Participant("Jan Janssens", "jan@bakkerij-peeters.example")],
    )
    for day in days:
        await dossier.handle.signal(
            DossierWorkflow.record_signature,
            SignatureInput(Document.ATTENDANCE, "Jan", "Jan Janssens", day),
        )
    await step_becomes(dossier.handle, Step.SATISFACTION)
    link_id = sign_link_id(dossier.dossier_id, "satisfaction", "client")
    path = await link_path(settings, session_factory, link_id)
    nonce, _ = await open_form(web, path)
    remark = f"{HOSTILE_NAME}\n{NUL}"
    answers = {
        "nonce": nonce,
        "full_name": HOSTILE_NAME,
        "consent": "yes",
        "q_content": "3",
        "q_trainer": "5",
        "q_organisation": "4",
        "q_usefulness": "4",
        "q_remark": remark,
    }

    refused = await web.post(path, data={**answers, "q_content": SQL_OR})
    signed = await web.post(path, data=answers)

    assert refused.status_code == 422
    assert "Kies een score van 1 tot 5." in refused.text
    assert SCRIPT not in refused.text  # the answers shown again are escaped
    assert signed.status_code == 200, signed.text
    archive = LocalArchive(settings.archive_dir)
    [evidence_row] = archived(session_factory, dossier.dossier_id, ".json")
    evidence = json.loads(archive.get(evidence_row.key))
    assert evidence["answers"]["remark"] == remark
    assert evidence["answers"]["content"] == 3
    assert evidence["typed_name"] == HOSTILE_NAME
    [source] = pdf_sources
    assert f"<td>{escape(remark)}</td>" in source
    assert SCRIPT not in source
    assert tables_intact(session_factory.kw["bind"])
    with contextlib.suppress(RPCError):  # it may have closed already
        await dossier.handle.terminate("test done")
