"""Signing pages: a client opens an emailed link, reads the document and signs it.

`GET /sign/{token}` shows the link's document in the client's language with a
form: the typed full name and a consent box. The documents are the programme's
terms, the attendance list and the satisfaction form (its questions, from
`web.satisfaction`, are answered in the same form).

The attendance list has one row per participant, with a column per training
day. A participant's own link signs that participant's row: one signal per
day. The client's link lists every participant, for signing in turn on site:
one form per row. Each row is claimed once (a unique timeline event), and the
shared link counts as used only once every row is signed, through it or
through a participant's own link.
`POST /sign/{token}` marks the link used once, even when two submits race;
archives the evidence (UTC time, IP address, user agent, SHA-256 of the
document's HTML as shown, link id) as JSON beside the document's HTML and a
signed PDF with an audit page; signals the dossier's workflow; and confirms.

The token holds only the link id (`adapters.links`). Each rendered form
carries a nonce signed with the same secret under another salt; it binds the
submit to that link, the language and the hash of the document shown, so the
form of one link cannot sign another, and a document that changed in between
is shown again instead of being signed unread.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import structlog
import weasyprint  # type: ignore[import-untyped]  # ships no type hints
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError

from activities.dossier import SIGN_LINK_VALIDITY, font_config
from adapters.archive import Archive, ArchivedItem
from adapters.links import InvalidSignToken, read_sign_token, sign_link_id
from adapters.records import (
    Dossier,
    Provider,
    SignLink,
    TimelineEvent,
    add_timeline_once,
    record_archived,
    utcnow,
)
from kmo.rules import retention_until
from web.satisfaction import Question, questions_for, read_answers
from workflows.messages import (
    Document,
    DossierInput,
    ResendInput,
    SignatureInput,
    SignLinksInput,
    Step,
)

log = structlog.get_logger(__name__)

router = APIRouter(tags=["signing"])

TEMPLATES = Path(__file__).parent / "templates" / "sign"
LANGUAGES = ("nl", "fr", "en")
DEFAULT_LANGUAGE = "nl"
CLIENT = "client"
FORM_SALT = "sign-form"
RENEW_SALT = "sign-renew"
FORM_MAX_AGE = timedelta(hours=4)  # a page left open longer is shown again
MAX_NAME_LENGTH = 200
# Documents that can be signed here, with their template's stem.
SIGNABLE = {
    Document.TERMS.value: "terms",
    Document.ATTENDANCE.value: "attendance",
    Document.SATISFACTION.value: "satisfaction",
}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

USED, EXPIRED, UNAVAILABLE = "used", "expired", "unavailable"


@dataclass(frozen=True)
class Facts:
    """What a signed document shows of its dossier, read from the records."""

    dossier_id: str
    workflow_id: str
    provider_id: str
    provider_name: str
    dv_number: str
    invoice_number: str
    client_name: str
    enterprise_number: str
    is_training: bool
    step: str
    created_on: date


@dataclass(frozen=True)
class Opened:
    """A link whose token is genuine; `refusal` says why it cannot be signed."""

    link_id: str
    document: str
    signer: str
    facts: Facts
    refusal: str | None


@dataclass(frozen=True)
class Sheet:
    """What a document shows besides the records' facts, read from the workflow.

    `rows` are the attendance list's participants (CLIENT when the dossier
    names none); `signed` the rows already signed, shown outside the document.
    """

    title: str = ""
    rows: tuple[str, ...] = ()
    days: tuple[date | None, ...] = ()
    questions: tuple[Question, ...] = ()
    signed: frozenset[str] = frozenset()
    start_date: date | None = None


# --- routes ----------------------------------------------------------------


@router.get("/sign/{token}", response_class=HTMLResponse)
async def sign_page(request: Request, token: str, lang: str = "") -> HTMLResponse:
    """The document behind an emailed link, with the form to sign it."""
    opened = await _open(request, token)
    if opened is None:
        return _invalid()
    language = await _language(request, opened.facts, lang)
    if opened.refusal is not None:
        return _refusal(request, token, opened, language, on_submit=False)
    sheet = await _sheet(request, opened)
    if sheet is None:
        return _message(language, 503, "failed")
    return _form(request, token, opened, language, sheet)


@router.post("/sign/{token}", response_class=HTMLResponse)
async def sign(request: Request, token: str) -> HTMLResponse:
    """Sign the link's document (or one row of a shared list): once, with evidence."""
    opened = await _open(request, token)
    if opened is None:
        return _invalid()
    form = await request.form()
    nonce = _read_nonce(request, FORM_SALT, form.get("nonce"), opened.link_id)
    if nonce is None:
        return _invalid()
    payload, stale = nonce
    language = payload["lang"]
    if opened.refusal is not None:
        return _refusal(request, token, opened, language, on_submit=True)

    sheet = await _sheet(request, opened)
    if sheet is None:
        return _message(language, 503, "failed")
    row = payload.get("p")
    if _is_shared_list(opened) and (row not in sheet.rows or row in sheet.signed):
        # A row signed meanwhile, or one no longer on the list: show it again.
        notice = _strings()[language]["row_signed"]
        return _form(request, token, opened, language, sheet, 409, notice=notice)
    suffix = _row_suffix(row)
    full_name = _printable(" ".join(str(form.get(f"full_name{suffix}") or "").split()))
    full_name = full_name[:MAX_NAME_LENGTH]
    texts = _strings()[language]
    retry = partial(_form, request, token, opened, language, sheet, row=row)
    if stale:
        return retry(400, full_name=full_name, notice=texts["error_stale"])
    answers, errors = read_answers(sheet.questions, form, texts, language)
    if not full_name:
        errors[f"full_name{suffix}"] = texts["error_name"]
    if not form.get(f"consent{suffix}"):
        errors[f"consent{suffix}"] = texts["error_consent"]
    if errors:
        return retry(422, full_name=full_name, errors=errors, answers=form)
    document = render_document(opened.document, language, opened.facts, sheet)
    if _sha256(document) != payload["h"]:
        return retry(409, full_name=full_name, notice=texts["error_changed"])
    signing = Signing(full_name, language, document, sheet, row, answers)
    return await _record_signature(request, token, opened, signing)


@router.post("/sign/{token}/renew", response_class=HTMLResponse)
async def request_renewal(request: Request, token: str) -> HTMLResponse:
    """Ask for a fresh link in place of an expired one.

    The request is a timeline event, once per link and day, and the first of
    the day asks the workflow to send the step's mail again: dossiers started
    since the `fresh-sign-links-2026-12` patch make new links for it. Older
    dossiers mail their first links again; staff sees the request and can
    resend after renewing by hand.
    """
    opened = await _open(request, token)
    if opened is None:
        return _invalid()
    form = await request.form()
    nonce = _read_nonce(request, RENEW_SALT, form.get("nonce"), opened.link_id)
    if nonce is None:
        return _invalid()
    language = nonce[0]["lang"]
    if opened.refusal == USED:
        return _refusal(request, token, opened, language, on_submit=True)

    today = utcnow().date().isoformat()
    first_today = await run_in_threadpool(
        add_timeline_once,
        _services(request).session_factory,
        TimelineEvent(
            dossier_id=opened.facts.dossier_id,
            at=utcnow(),
            event="link.renewal_requested",
            detail=f"{opened.document} link {opened.link_id}",
            step=opened.facts.step,
            source=f"renew/{opened.link_id}/{today}",
        ),
    )
    log.info(
        "sign_link.renewal_requested",
        dossier_id=opened.facts.dossier_id,
        link_id=opened.link_id,
    )
    if first_today:
        await _ask_for_fresh_link(_services(request).client, opened)
    return _message(language, 200, "renewal")


async def _ask_for_fresh_link(client: Client, opened: Opened) -> None:
    """Signal the workflow to mail the document's step again, with a new link."""
    step = Step(opened.document)
    try:
        await client.get_workflow_handle(opened.facts.workflow_id).signal(
            "resend_mail", ResendInput(step=step, by="signer: link expired")
        )
    except RPCError as error:  # the timeline line stays for staff
        log.warning(
            "sign_link.renewal_not_signalled",
            dossier_id=opened.facts.dossier_id,
            status=error.status.name,
        )


# --- opening a link ----------------------------------------------------------


async def _open(request: Request, token: str) -> Opened | None:
    """The link of a genuine token, with its state; None for anything forged."""
    secret = _secret(request)
    max_age = int(SIGN_LINK_VALIDITY.total_seconds())
    too_old = False
    try:
        link_id = read_sign_token(secret, token, max_age_seconds=max_age)
    except InvalidSignToken as error:
        if not isinstance(error.__cause__, SignatureExpired):
            log.info("sign_link.invalid_token")
            return None
        link_id = read_sign_token(secret, token)  # genuine, only old
        too_old = True

    loaded = await run_in_threadpool(_load, _services(request).session_factory, link_id)
    if loaded is None:
        log.info("sign_link.unknown", link_id=link_id)
        return None
    row, facts = loaded
    refusal = None
    if row.used_at is not None:
        refusal = USED
    elif too_old or row.expires_at <= utcnow():
        refusal = EXPIRED
    elif row.document not in SIGNABLE:
        refusal = UNAVAILABLE
    return Opened(link_id, row.document, row.signer, facts, refusal)


def _load(
    sessions: sessionmaker[Session], link_id: str
) -> tuple[SignLink, Facts] | None:
    with sessions() as session:
        link = session.get(SignLink, link_id)
        if link is None:
            return None
        dossier = session.get(Dossier, link.dossier_id)
        if dossier is None:
            return None
        provider = session.get_one(Provider, dossier.provider_id)
        session.expunge(link)
        facts = Facts(
            dossier_id=dossier.dossier_id,
            workflow_id=dossier.workflow_id,
            provider_id=dossier.provider_id,
            provider_name=provider.name,
            dv_number=_dv_number(provider.dv_numbers, dossier.kind),
            invoice_number=dossier.invoice_number,
            client_name=dossier.client_name,
            enterprise_number=dossier.client_enterprise_number,
            is_training=dossier.kind == "training",
            step=dossier.step,
            created_on=dossier.created_at.date(),
        )
        return link, facts


def _dv_number(known: Any, kind: str) -> str:
    """The provider's DV number of the dossier's kind: DV.O training, DV.A advice."""
    numbers = [known] if isinstance(known, str) else list(known or [])
    prefix = "DV.O" if kind == "training" else "DV.A"
    matching = [number for number in numbers if number.startswith(prefix)]
    return (matching or numbers or [""])[0]


async def _language(request: Request, facts: Facts, asked: str) -> str:
    """The language asked for on the page, else the client's, else Dutch."""
    if asked in LANGUAGES:
        return asked
    dossier = await _dossier_input(_services(request).client, facts.workflow_id)
    language = dossier.client.language if dossier is not None else ""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


async def _dossier_input(client: Client, workflow_id: str) -> DossierInput | None:
    """The dossier as its workflow started: the client's language, the start date.

    The records keep neither, so they are read from the first history event.
    """
    handle = client.get_workflow_handle(workflow_id)
    try:
        async for event in handle.fetch_history_events(page_size=1):
            started = event.workflow_execution_started_event_attributes
            [dossier] = await client.data_converter.decode(
                started.input.payloads, [DossierInput]
            )
            return dossier
    except Exception as error:  # any failure means: fall back to the defaults
        log.warning(
            "signing.dossier_input_unavailable",
            workflow_id=workflow_id,
            error=type(error).__name__,
        )
    return None


async def _sheet(request: Request, opened: Opened) -> Sheet | None:
    """The training, its days and participants, or the questions, of a link.

    None when the workflow cannot be read: an attendance list without its
    participants and days would sign the wrong rows.
    """
    if opened.document == Document.TERMS.value:
        return Sheet()
    services = _services(request)
    dossier = await _signing_dossier(
        services.client, opened.facts.workflow_id, opened.document
    )
    if dossier is None:
        return None
    title = dossier.title or opened.facts.invoice_number
    if opened.document == Document.SATISFACTION.value:
        questions = await run_in_threadpool(
            questions_for,
            request.app.state.settings.data_dir,
            opened.facts.provider_id,
        )
        return Sheet(title=title, questions=questions, start_date=dossier.start_date)

    if opened.signer != CLIENT:
        rows: tuple[str, ...] = (opened.signer,)
    else:
        rows = tuple(p.name for p in dossier.participants) or (CLIENT,)
    signed: frozenset[str] = frozenset()
    if _is_shared_list(opened):
        signed = await run_in_threadpool(
            _signed_rows, services.session_factory, opened, rows
        )
    return Sheet(
        title=title,
        rows=rows,
        days=tuple(dossier.session_dates) or (None,),
        signed=signed,
        start_date=dossier.start_date,
    )


async def _signing_dossier(
    client: Client, workflow_id: str, document: str
) -> DossierInput | None:
    """The dossier as the workflow last made links for `document`.

    Participants and session dates may be added after the start; the input of
    the latest `create_sign_links` for the document holds them as mailed.
    Falls back to the start input.
    """
    handle = client.get_workflow_handle(workflow_id)
    found: DossierInput | None = None
    try:
        async for event in handle.fetch_history_events():
            if event.HasField("workflow_execution_started_event_attributes"):
                started = event.workflow_execution_started_event_attributes
                [found] = await client.data_converter.decode(
                    started.input.payloads, [DossierInput]
                )
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == "create_sign_links":
                [links] = await client.data_converter.decode(
                    scheduled.input.payloads, [SignLinksInput]
                )
                if links.document.value == document:
                    found = links.dossier
    except Exception as error:  # the page says: try again later
        log.warning(
            "signing.dossier_unavailable",
            workflow_id=workflow_id,
            error=type(error).__name__,
        )
        return None
    return found


def _signed_rows(
    sessions: sessionmaker[Session], opened: Opened, rows: tuple[str, ...]
) -> frozenset[str]:
    """Rows signed through this shared link, or through the participant's own."""
    by_source = {_row_source(opened.link_id, row): row for row in rows}
    by_link = {
        sign_link_id(opened.facts.dossier_id, opened.document, row): row
        for row in rows
        if row != CLIENT
    }
    with sessions() as session:
        sources = session.scalars(
            select(TimelineEvent.source).where(TimelineEvent.source.in_(by_source))
        )
        links = session.scalars(
            select(SignLink.link_id).where(
                SignLink.link_id.in_(by_link), SignLink.used_at.is_not(None)
            )
        )
        signed = {by_source[s] for s in sources if s} | {by_link[i] for i in links}
    return frozenset(signed)


def _is_shared_list(opened: Opened) -> bool:
    return opened.document == Document.ATTENDANCE.value and opened.signer == CLIENT


def _row_key(row: str) -> str:
    """A row's id in keys and field names: names are personal data, so hashed."""
    return hashlib.sha256(row.encode()).hexdigest()[:12]


def _row_suffix(row: str | None) -> str:
    return "" if row is None else f"_{_row_key(row)}"


def _row_source(link_id: str, row: str) -> str:
    return f"sign/{link_id}/{_row_key(row)}"


def _row_name(row: str | None, facts: Facts) -> str:
    """A row's participant as shown: the client's name when none is named."""
    return facts.client_name if row in (None, CLIENT) else str(row)


# --- signing -----------------------------------------------------------------


@dataclass(frozen=True)
class Signing:
    """One submitted signature: who typed what, on which document and row."""

    full_name: str
    language: str
    document: str  # the HTML shown, as rendered again for the submit
    sheet: Sheet
    row: str | None  # the shared attendance list's row; None for a whole link
    answers: dict[str, int | str]


async def _record_signature(
    request: Request, token: str, opened: Opened, signing: Signing
) -> HTMLResponse:
    services = _services(request)
    facts = opened.facts
    language, row = signing.language, signing.row
    signed_at = utcnow()
    claim = _claim if row is None else partial(_claim_row, opened=opened, row=row)
    if not await run_in_threadpool(
        claim, services.session_factory, opened.link_id, signed_at
    ):
        # Another submit won the race, or the link expired meanwhile.
        return await _lost_race(request, token, language)

    signatures = _signatures(opened, signing)
    evidence = _evidence(request, opened, signing, signatures, signed_at)
    stem = f"signed-{opened.document}-{opened.link_id}"
    if row is not None:
        stem += f"-{_row_key(row)}"
    try:
        start = signing.sheet.start_date
        if start is None:
            dossier = await _dossier_input(services.client, facts.workflow_id)
            # Without the start date, the dossier's creation keeps it as long.
            start = dossier.start_date if dossier is not None else facts.created_on
        pdf_key, evidence_key = await run_in_threadpool(
            _archive_evidence,
            _archive(request),
            services.session_factory,
            facts,
            signing.document,
            evidence,
            retention_until(start),
            stem,
            _answer_lines(signing),
        )
        handle = services.client.get_workflow_handle(facts.workflow_id)
        for signature in signatures:
            signature.evidence_key = pdf_key
            await handle.signal("record_signature", signature)
    except Exception as error:  # give the link back: nothing counts as signed
        release = _release if row is None else _release_row
        await run_in_threadpool(
            release, services.session_factory, opened.link_id, signed_at
        )
        log.warning(
            "signature.failed",
            dossier_id=facts.dossier_id,
            link_id=opened.link_id,
            error=type(error).__name__,
        )
        return _message(language, 503, "failed")

    await run_in_threadpool(
        _after_signing,
        services.session_factory,
        opened,
        signing,
        signed_at,
        evidence_key,
    )
    log.info(
        "signature.recorded",
        dossier_id=facts.dossier_id,
        workflow_id=facts.workflow_id,
        link_id=opened.link_id,
        document=opened.document,
        row=_row_key(row) if row is not None else None,
    )
    if row is not None:
        again = await _open(request, token)
        if again is not None and again.refusal is None:
            sheet = await _sheet(request, again)
            if sheet is not None:
                notice = _strings()[language]["row_recorded"]
                return _form(request, token, again, language, sheet, notice=notice)
    return _message(
        language,
        200,
        "signed",
        signed_at=signed_at.strftime("%Y-%m-%d %H:%M:%S"),
        reference=opened.link_id,
    )


async def _lost_race(request: Request, token: str, language: str) -> HTMLResponse:
    again = await _open(request, token)
    if again is None:
        return _invalid()
    if again.refusal is not None:
        return _refusal(request, token, again, language, on_submit=True)
    sheet = await _sheet(request, again)  # a shared list: that row was taken
    if sheet is None:
        return _message(language, 503, "failed")
    notice = _strings()[language]["row_signed"]
    return _form(request, token, again, language, sheet, 409, notice=notice)


def _signatures(opened: Opened, signing: Signing) -> list[SignatureInput]:
    """The workflow's signals: one per training day of the attendance row(s)."""
    document = Document(opened.document)
    if document != Document.ATTENDANCE:
        return [
            SignatureInput(
                document=document,
                signer_name=signing.full_name,
                link_id=opened.link_id,
            )
        ]
    row = signing.row if signing.row is not None else opened.signer
    return [
        SignatureInput(
            document=document,
            signer_name=signing.full_name,
            participant=None if row == CLIENT else row,
            day=day,
            link_id=opened.link_id,
        )
        for day in signing.sheet.days
    ]


def _evidence(
    request: Request,
    opened: Opened,
    signing: Signing,
    signatures: list[SignatureInput],
    signed_at: datetime,
) -> dict[str, Any]:
    facts = opened.facts
    evidence: dict[str, Any] = {
        "dossier_id": facts.dossier_id,
        "workflow_id": facts.workflow_id,
        "link_id": opened.link_id,
        "document": opened.document,
        "signer": opened.signer,
        "typed_name": signing.full_name,
        "consent": True,
        "language": signing.language,
        "signed_at": signed_at.isoformat(),
        "client_ip": request.client.host if request.client else "",
        "user_agent": request.headers.get("user-agent", ""),
        "document_sha256": _sha256(signing.document),
    }
    if opened.document == Document.ATTENDANCE.value:
        evidence["attendance"] = [
            {
                "participant": _row_name(signature.participant, facts),
                "company": facts.client_name,
                "training": signing.sheet.title,
                "day": signature.day.isoformat() if signature.day else None,
                "typed_name": signing.full_name,
                "signed_at": signed_at.isoformat(),
            }
            for signature in signatures
        ]
    if opened.document == Document.SATISFACTION.value:
        evidence["answers"] = signing.answers
    return evidence


def _answer_lines(signing: Signing) -> list[tuple[str, str]]:
    """The satisfaction answers as the PDF prints them: question, answer."""
    return [
        (question.text(signing.language), str(signing.answers.get(question.id, "")))
        for question in signing.sheet.questions
    ]


def _after_signing(
    sessions: sessionmaker[Session],
    opened: Opened,
    signing: Signing,
    signed_at: datetime,
    evidence_key: str,
) -> None:
    """Note the signature; a shared list's link is used once every row is signed."""
    detail = f"{opened.document} through link {opened.link_id}; evidence {evidence_key}"
    if signing.row is None:
        add_timeline_once(
            sessions,
            TimelineEvent(
                dossier_id=opened.facts.dossier_id,
                at=signed_at,
                event="signature.recorded",
                detail=detail,
                step=opened.facts.step,
                source=f"sign/{opened.link_id}",
            ),
        )
        return
    with sessions.begin() as session:
        session.execute(
            update(TimelineEvent)
            .where(TimelineEvent.source == _row_source(opened.link_id, signing.row))
            .values(detail=detail)
            .execution_options(synchronize_session=False)
        )
    if _signed_rows(sessions, opened, signing.sheet.rows) >= set(signing.sheet.rows):
        _claim(sessions, opened.link_id, signed_at)


def _claim_row(
    sessions: sessionmaker[Session],
    link_id: str,
    at: datetime,
    *,
    opened: Opened,
    row: str,
) -> bool:
    """Claim one row of a shared list: its unique timeline event; one winner."""
    with sessions() as session:
        link = session.get(SignLink, link_id)
        if link is None or link.used_at is not None or link.expires_at <= at:
            return False
        session.add(
            TimelineEvent(
                dossier_id=opened.facts.dossier_id,
                at=at,
                event="signature.recorded",
                detail=f"{opened.document} through link {link_id}",
                step=opened.facts.step,
                source=_row_source(link_id, row),
            )
        )
        try:
            session.commit()
        except IntegrityError:  # signed a moment ago by another submit
            session.rollback()
            return False
        return True


def _release_row(sessions: sessionmaker[Session], link_id: str, at: datetime) -> None:
    """Undo our own row claims after a failure, so the row can be signed again."""
    with sessions.begin() as session:
        session.execute(
            delete(TimelineEvent)
            .where(
                TimelineEvent.source.startswith(f"sign/{link_id}/"),
                TimelineEvent.at == at,
            )
            .execution_options(synchronize_session=False)
        )


def _claim(sessions: sessionmaker[Session], link_id: str, at: datetime) -> bool:
    """Mark the link used, if nobody did and it has not expired: one winner."""
    with sessions.begin() as session:
        result = session.execute(
            update(SignLink)
            .where(
                SignLink.link_id == link_id,
                SignLink.used_at.is_(None),
                SignLink.expires_at > at,
            )
            .values(used_at=at)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1  # type: ignore[attr-defined]


def _release(sessions: sessionmaker[Session], link_id: str, at: datetime) -> None:
    """Undo our own claim after a failure, so the client can sign again."""
    with sessions.begin() as session:
        session.execute(
            update(SignLink)
            .where(SignLink.link_id == link_id, SignLink.used_at == at)
            .values(used_at=None)
            .execution_options(synchronize_session=False)
        )


def _archive_evidence(
    archive: Archive,
    sessions: sessionmaker[Session],
    facts: Facts,
    document: str,
    evidence: dict[str, Any],
    retain_until: date,
    stem: str,
    answers: list[tuple[str, str]],
) -> tuple[str, str]:
    """Archive the document's HTML, the signed PDF and the evidence JSON.

    Returns the keys of the PDF and of the evidence.
    """
    language = evidence["language"]
    pdf = weasyprint.HTML(
        string=_environment()
        .get_template("signed_pdf.html")
        .render(
            language=language,
            t=_strings()[language],
            document=Markup(document),  # noqa: S704 - rendered with autoescape
            evidence=evidence,
            answers=answers,
        )
    ).write_pdf(font_config=font_config())
    assert pdf is not None  # write_pdf returns bytes when given no target
    put = partial(
        archive.put, facts.provider_id, facts.dossier_id, retain_until=retain_until
    )
    html_item = put(f"{stem}.html", document.encode(), content_type="text/html")
    pdf_item = put(f"{stem}.pdf", pdf, content_type="application/pdf")
    evidence = {
        **evidence,
        "document_archive_key": html_item.key,
        "pdf_archive_key": pdf_item.key,
        "pdf_sha256": pdf_item.sha256,
    }
    data = json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    json_item = put(f"{stem}.json", data.encode(), content_type="application/json")

    with sessions.begin() as session:
        for item in (html_item, pdf_item, json_item):
            _record(session, item, facts)
    return pdf_item.key, json_item.key


def _record(session: Session, item: ArchivedItem, facts: Facts) -> None:
    record_archived(
        session,
        item,
        container=facts.provider_id,
        dossier_id=facts.dossier_id,
        name=item.key.rsplit("/", 1)[-1].split("-", 1)[-1],
        content_type=item.content_type,
    )


# --- rendering ---------------------------------------------------------------


def render_document(
    document: str, language: str, facts: Facts, sheet: Sheet | None = None
) -> str:
    """The document's HTML as the signer reads it; its SHA-256 is the evidence."""
    template = _environment().get_template(f"{SIGNABLE[document]}.{language}.html")
    sheet = sheet or Sheet()
    rows = [(_row_name(row, facts), row) for row in sheet.rows]
    return template.render(facts=facts, sheet=sheet, rows=rows)


def _form(
    request: Request,
    token: str,
    opened: Opened,
    language: str,
    sheet: Sheet,
    status: int = 200,
    *,
    full_name: str = "",
    notice: str = "",
    errors: dict[str, str] | None = None,
    row: str | None = None,
    answers: Any = None,
) -> HTMLResponse:
    """The document with its form; a shared list gets one form per row."""
    document = render_document(opened.document, language, opened.facts, sheet)
    serializer = _serializer(request, FORM_SALT)
    digest = _sha256(document)
    nonce = serializer.dumps({"l": opened.link_id, "lang": language, "h": digest})
    forms = [
        {
            "name": _row_name(name, opened.facts),
            "suffix": _row_suffix(name),
            "signed": name in sheet.signed,
            "current": name == row,
            "nonce": serializer.dumps(
                {"l": opened.link_id, "lang": language, "h": digest, "p": name}
            ),
        }
        for name in (sheet.rows if _is_shared_list(opened) else ())
    ]
    texts = _strings()[language]
    return _page(
        "form.html",
        language,
        status,
        title=texts["title_sign"],
        token=token,
        nonce=nonce,
        forms=forms,
        document=Markup(document),  # noqa: S704 - rendered with autoescape
        questions=[
            {
                "field": f"q_{question.id}",
                "kind": question.kind,
                "label": question.text(language),
                "required": question.required,
                "value": str((answers or {}).get(f"q_{question.id}") or ""),
            }
            for question in sheet.questions
        ],
        full_name=full_name,
        notice=notice,
        errors=errors or {},
    )


def _refusal(
    request: Request, token: str, opened: Opened, language: str, *, on_submit: bool
) -> HTMLResponse:
    """Already signed, expired, or not signable online."""
    if opened.refusal == USED:
        return _message(language, 409 if on_submit else 200, "used")
    if opened.refusal == EXPIRED:
        renew_nonce = _serializer(request, RENEW_SALT).dumps(
            {"l": opened.link_id, "lang": language}
        )
        return _message(language, 410, "expired", token=token, renew_nonce=renew_nonce)
    return _message(language, 501, "unavailable")


def _message(language: str, status: int, kind: str, **context: Any) -> HTMLResponse:
    texts = _strings()[language]
    return _page(
        "message.html",
        language,
        status,
        title=texts[f"{kind}_title"],
        body=texts[f"{kind}_body"],
        **context,
    )


def _invalid() -> HTMLResponse:
    """A forged, altered or unknown token: no detail about why."""
    html = _environment().get_template("invalid.html").render()
    return HTMLResponse(html, status_code=400, headers=SECURITY_HEADERS)


def _page(template: str, language: str, status: int, **context: Any) -> HTMLResponse:
    strings = _strings()
    html = (
        _environment()
        .get_template(template)
        .render(
            language=language,
            t=strings[language],
            languages=[(code, strings[code]["language_name"]) for code in LANGUAGES],
            **context,
        )
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=1)
def _strings() -> dict[str, dict[str, str]]:
    """The pages' words per language, from `templates/sign/strings.json`."""
    strings: dict[str, dict[str, str]] = json.loads(
        (TEMPLATES / "strings.json").read_text(encoding="utf-8")
    )
    return strings


# --- small helpers -------------------------------------------------------------


def _read_nonce(
    request: Request, salt: str, nonce: Any, link_id: str
) -> tuple[dict[str, str], bool] | None:
    """The form's nonce for this link, and whether it is stale; None if forged."""
    if not isinstance(nonce, str):
        return None
    serializer = _serializer(request, salt)
    stale = False
    try:
        payload = serializer.loads(nonce, max_age=int(FORM_MAX_AGE.total_seconds()))
    except SignatureExpired:
        payload, stale = serializer.loads(nonce), True
    except BadSignature:
        log.info("sign_link.invalid_nonce", link_id=link_id)
        return None
    if (
        not isinstance(payload, dict)
        or payload.get("l") != link_id
        or payload.get("lang") not in LANGUAGES
    ):
        log.info("sign_link.nonce_of_another_link", link_id=link_id)
        return None
    return payload, stale


def _serializer(request: Request, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret(request), salt=salt)


def _secret(request: Request) -> str:
    secret: str = request.app.state.settings.link_secret.get_secret_value()
    return secret


def _services(request: Request) -> Any:
    return request.app.state.services


def _archive(request: Request) -> Archive:
    """The archive the app's services hold (local or S3, as the settings chose)."""
    archive: Archive = _services(request).archive
    return archive


def _printable(text: str) -> str:
    """The text without control characters (NUL, DEL, C1): no name holds one,
    and neither the records nor the PDF should."""
    return "".join(char for char in text if unicodedata.category(char) != "Cc")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
