"""Mail in: route a mail to its dossier, its provider's container or quarantine.

Every way mail comes in (SendGrid Inbound Parse, the local SMTP listener)
ends in `receive_mail`. The recipient decides where the mail goes:

- `dossier+<dossier_id>@containers.<mail_domain>`: a reply on a dossier. The
  `.eml` and its attachments are archived under the dossier and its timeline
  gets a `mail.received` line.
- `<provider_id>@containers.<mail_domain>`: the provider's container. The
  `.eml` and each attachment are archived in the container's inbox folder;
  a UBL invoice starts a dossier through intake; so does a PDF invoice whose
  fields stand in the mail's text as `key: value` lines (the upload's field
  names), otherwise it is kept with a note naming the fields still needed; a
  quote ("offerte", "devis") is kept.
- anything else: quarantine. The `.eml` is archived in the `quarantine`
  container with a manifest saying why, so no mail is ever lost.

Attachment names and content types come from the sender and are never
trusted: names go through `safe_name` with a numbered prefix, and the kind of
a file is read from its bytes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from adapters.archive import Archive, InvalidArchiveKey, safe_name, sha256_hex
from adapters.records import (
    Dossier,
    Provider,
    TimelineEvent,
    dossier_retention,
    record_archived,
)
from kmo.invoice import PDF_FIELD_KEYS, InvoiceRejected, read_ubl
from kmo.rules import retention_until

log = structlog.get_logger(__name__)

MAX_MAIL_BYTES = 25 * 1024 * 1024
MAX_ATTACHMENTS = 100
QUARANTINE = "quarantine"
EML_NAME = "mail.eml"
PDF_MAGIC = b"%PDF-"
QUOTE_WORDS = ("offerte", "quote", "devis")
INVOICE_WORDS = ("factuur", "invoice", "facture")
SOURCE_PREFIX = "inbound:"
_UBL_ROOT = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?(?:Invoice|CreditNote)[\s/>]",
)
_XML_PROLOG = re.compile(rb"\s*(?:<\?[^>]*\?>\s*|<!--.*?-->\s*)*", re.DOTALL)


class MailTooLarge(Exception):
    """The mail is larger than the inbound limit."""


@dataclass
class AttachmentOutcome:
    """What became of one attachment: its archive key, its kind, its dossier."""

    name: str
    key: str
    kind: str  # "ubl_invoice", "pdf_invoice", "quote" or "document"
    dossier_id: str | None = None
    note: str = ""


@dataclass
class InboundResult:
    """Where a mail went: `route` is "dossier", "container" or "quarantine"."""

    route: str
    container: str
    folder: str
    mail_key: str
    dossier_id: str | None = None
    attachments: list[AttachmentOutcome] = field(default_factory=list)
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "container": self.container,
            "dossier_id": self.dossier_id,
            "mail_key": self.mail_key,
            "reason": self.reason,
            "attachments": [
                {
                    "name": a.name,
                    "key": a.key,
                    "kind": a.kind,
                    "dossier_id": a.dossier_id,
                    "note": a.note,
                }
                for a in self.attachments
            ],
        }


@dataclass(frozen=True)
class Route:
    kind: str  # "dossier", "container" or "quarantine"
    container: str
    dossier_id: str | None = None
    reason: str | None = None


def parse_mail(raw: bytes) -> EmailMessage:
    """A mail read with the modern policy: decoded headers, any charset."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    return message  # type: ignore[return-value]


def mail_bytes(message: EmailMessage) -> bytes:
    """The mail as stored: RFC 5322 bytes with CRLF line ends."""
    return message.as_bytes(policy=policy.default.clone(linesep="\r\n"))


async def receive_mail(
    raw: bytes | EmailMessage,
    *,
    recipients: list[str],
    archive: Archive,
    session_factory: Any,
    intake: Any,
    mail_domain: str,
    max_bytes: int = MAX_MAIL_BYTES,
) -> InboundResult:
    """Archive one received mail where its recipient says, and act on it."""
    data = raw if isinstance(raw, bytes) else mail_bytes(raw)
    if len(data) > max_bytes:
        raise MailTooLarge(f"the mail is larger than {max_bytes // 2**20} MB")
    message = parse_mail(data) if isinstance(raw, bytes) else raw
    digest = sha256_hex(data)

    route = find_route(recipients, session_factory, mail_domain)
    if route.kind == "quarantine":
        result = _quarantine(data, digest, recipients, route, archive, session_factory)
    elif route.kind == "dossier":
        result = _to_dossier(data, digest, message, route, archive, session_factory)
    else:
        result = await _to_container(
            data, digest, message, route, archive, session_factory, intake
        )
    log.info(
        "mail.received",
        route=result.route,
        container=result.container,
        dossier_id=result.dossier_id,
        mail_sha256=digest[:16],
        attachments=len(result.attachments),
    )
    return result


# --- routing -----------------------------------------------------------------


def find_route(recipients: list[str], session_factory: Any, mail_domain: str) -> Route:
    """The first recipient at our container domain that names a known place."""
    domain = f"containers.{mail_domain}".lower()
    ours = [
        local
        for local, _, at in (
            address.strip().lower().rpartition("@")
            for _, address in getaddresses(recipients)
        )
        if local and at == domain
    ]
    if not ours:
        return Route("quarantine", QUARANTINE, reason="no recipient at our domain")
    with session_factory() as session:
        for local in ours:
            if local.startswith("dossier+"):
                dossier = session.get(Dossier, local.removeprefix("dossier+"))
                if dossier is not None:
                    return Route("dossier", dossier.provider_id, dossier.dossier_id)
            elif session.get(Provider, local) is not None:
                return Route("container", local)
    return Route("quarantine", QUARANTINE, reason="unknown container or dossier")


# --- the three routes ----------------------------------------------------------


def _quarantine(
    data: bytes,
    digest: str,
    recipients: list[str],
    route: Route,
    archive: Archive,
    session_factory: Any,
) -> InboundResult:
    folder = f"mail-{digest[:16]}"
    store = _Store(archive, session_factory, QUARANTINE, folder)
    mail_key = store.put(EML_NAME, data, "message/rfc822")
    manifest = {
        "reason": route.reason,
        "recipients": recipients,
        "mail_key": mail_key,
        "mail_sha256": digest,
        "received_at": datetime.now(UTC).isoformat(),
    }
    store.put(
        "manifest.json",
        json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n",
        "application/json",
    )
    log.warning("mail.quarantined", mail_sha256=digest[:16], reason=route.reason)
    return InboundResult(
        "quarantine", QUARANTINE, folder, mail_key, reason=route.reason
    )


def _to_dossier(
    data: bytes,
    digest: str,
    message: EmailMessage,
    route: Route,
    archive: Archive,
    session_factory: Any,
) -> InboundResult:
    assert route.dossier_id is not None
    with session_factory() as session:  # kept as long as the dossier it joins
        retain_until = dossier_retention(session, route.dossier_id)
    store = _Store(
        archive, session_factory, route.container, route.dossier_id, retain_until
    )
    mail_key = store.put(EML_NAME, data, "message/rfc822")
    outcomes = [
        AttachmentOutcome(name, store.put(name, payload, content_type), "document")
        for name, payload, content_type in _attachments(message)
    ]
    detail = {"mail_key": mail_key, "attachments": len(outcomes)}
    _add_timeline(session_factory, route.dossier_id, detail, digest)
    return InboundResult(
        "dossier",
        route.container,
        route.dossier_id,
        mail_key,
        route.dossier_id,
        outcomes,
    )


async def _to_container(
    data: bytes,
    digest: str,
    message: EmailMessage,
    route: Route,
    archive: Archive,
    session_factory: Any,
    intake: Any,
) -> InboundResult:
    folder = f"inbox-{digest[:16]}"
    store = _Store(archive, session_factory, route.container, folder)
    mail_key = store.put(EML_NAME, data, "message/rfc822")
    subject = str(message.get("subject", "") or "")
    fields = fields_in_text(_text_body(message))
    outcomes = []
    for name, payload, content_type in _attachments(message):
        key = store.put(name, payload, content_type)
        outcome = AttachmentOutcome(name, key, classify(name, subject, payload))
        await _act_on(outcome, payload, route.container, intake, fields)
        outcomes.append(outcome)
    return InboundResult("container", route.container, folder, mail_key, None, outcomes)


async def _act_on(
    outcome: AttachmentOutcome,
    payload: bytes,
    provider_id: str,
    intake: Any,
    fields: dict[str, str] | None = None,
) -> None:
    """Start a dossier for an invoice; note what a person must do otherwise.

    A PDF invoice starts one when the mail's text gives its fields.
    """
    if outcome.kind == "ubl_invoice" and intake is not None:
        await _submit(outcome, payload, "application/xml", provider_id, intake, {})
    elif outcome.kind == "pdf_invoice" and fields and intake is not None:
        await _submit(outcome, payload, "application/pdf", provider_id, intake, fields)
    elif outcome.kind == "pdf_invoice":
        outcome.note = (
            "PDF invoice: needs its fields to start a dossier; mail it again with "
            "them as 'key: value' lines in the text, or upload it with them"
        )
    elif outcome.kind == "quote":
        outcome.note = "quote kept in the container"
    elif outcome.kind == "document" and _looks_like_xml(payload):
        outcome.note = (
            f"kept, no dossier started: {_xml_refusal(payload, outcome.name)}"
        )


async def _submit(
    outcome: AttachmentOutcome,
    payload: bytes,
    content_type: str,
    provider_id: str,
    intake: Any,
    fields: dict[str, str],
) -> None:
    """The invoice through the upload's intake; the outcome notes what came of it."""
    from starter.intake import IntakeError, UploadDetails

    try:
        started = await intake.submit(
            payload,
            outcome.name,
            content_type,
            UploadDetails(provider_id=provider_id, fields=fields),
        )
    except IntakeError as error:
        problems = "; ".join(p.message for p in error.problems)
        outcome.note = f"not started: {error.message}" + (
            f" ({problems})" if problems else ""
        )
        log.info("mail.invoice_refused", container=provider_id, key=outcome.key)
        return
    outcome.dossier_id = started.dossier_id
    outcome.note = "dossier started" if started.created else "dossier already running"


_FIELD_LINE = re.compile(r"^\s*([a-z_]+)\s*[:=]\s*(.*?)\s*$")


def fields_in_text(text: str) -> dict[str, str]:
    """The PDF invoice fields given as `key: value` (or `key=value`) lines.

    Only the upload's own field names count (`participants` is their number);
    other lines are ignored, and a key given twice keeps its last value.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _FIELD_LINE.match(line)
        if match and match.group(1) in PDF_FIELD_KEYS and match.group(2):
            value = match.group(2)
            if not any(unicodedata.category(char) == "Cc" for char in value):
                found[match.group(1)] = value  # a tab or NUL: left out
    return found


def _text_body(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    if body is None:
        return ""
    try:
        return str(body.get_content())
    except (LookupError, UnicodeError):  # an unknown or lying charset
        return ""


def classify(name: str, subject: str, payload: bytes) -> str:
    """The kind of an attachment, read from its bytes, name and the subject."""
    words = f"{name} {subject}".lower()
    if is_ubl(payload):
        return "ubl_invoice"
    if any(word in words for word in QUOTE_WORDS):
        return "quote"
    if payload.startswith(PDF_MAGIC) and any(w in words for w in INVOICE_WORDS):
        return "pdf_invoice"
    return "document"


def _looks_like_xml(payload: bytes) -> bool:
    return payload[:1024].removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<")


def _xml_refusal(payload: bytes, name: str) -> str:
    """Why an XML attachment is no invoice we read (the hardened parser says)."""
    try:
        read_ubl(payload, filename=name)
    except InvoiceRejected as error:
        return str(error)
    return "its root element is no UBL Invoice or CreditNote"


def is_ubl(payload: bytes) -> bool:
    """True when the bytes are XML whose root is a UBL Invoice or CreditNote."""
    head = payload[:4096].removeprefix(b"\xef\xbb\xbf")
    prolog = _XML_PROLOG.match(head)
    start = prolog.end() if prolog else 0
    return _UBL_ROOT.match(head, start) is not None


# --- helpers -------------------------------------------------------------------


def _attachments(message: EmailMessage) -> list[tuple[str, bytes, str]]:
    """Each attachment as (unique safe name, bytes, declared type), in order."""
    found = []
    for index, part in enumerate(message.iter_attachments(), start=1):
        if index > MAX_ATTACHMENTS:
            break  # the rest stays inside the archived .eml
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = part.as_bytes() if part.is_multipart() else b""
        found.append((_attachment_name(index, part), payload, _content_type(part)))
    return found


def _attachment_name(index: int, part: Any) -> str:
    try:
        given = part.get_filename() or ""
    except (ValueError, LookupError):  # a broken RFC 2231 name
        given = ""
    given = given.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return f"{index:02d}-{safe_name(given)}"
    except InvalidArchiveKey:
        return f"{index:02d}-attachment.bin"


def _content_type(part: Any) -> str:
    value = part.get_content_type()
    return (
        value
        if re.fullmatch(r"[\w.+-]+/[\w.+-]+", value)
        else "application/octet-stream"
    )


class _Store:
    """Archive writes of one mail's folder, each noted in the records."""

    def __init__(
        self,
        archive: Archive,
        sessions: Any,
        container: str,
        folder: str,
        retain_until: date | None = None,
    ):
        self.archive = archive
        self.sessions = sessions
        self.container = container
        self.folder = folder
        self.retain_until = retain_until or retention_until(datetime.now(UTC).date())

    def put(self, name: str, data: bytes, content_type: str) -> str:
        item = self.archive.put(
            self.container,
            self.folder,
            name,
            data,
            retain_until=self.retain_until,
            content_type=content_type,
        )
        with self.sessions() as session, session.begin():
            record_archived(
                session,
                item,
                container=self.container,
                dossier_id=self.folder,
                name=name,
                content_type=content_type,
            )
        return item.key


def _add_timeline(
    sessions: Any, dossier_id: str, detail: dict[str, Any], digest: str
) -> None:
    """One `mail.received` line per distinct mail, also when delivered twice."""
    line = TimelineEvent(
        dossier_id=dossier_id,
        event="mail.received",
        detail=json.dumps(detail, sort_keys=True),
        step=None,
        source=f"{SOURCE_PREFIX}{digest}",
    )
    with sessions() as session:
        session.add(line)
        try:
            session.commit()
        except IntegrityError:  # this mail was recorded before
            session.rollback()
