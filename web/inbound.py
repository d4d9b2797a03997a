"""SendGrid Inbound Parse: mail to a container or dossier address, posted to us.

SendGrid posts each received mail as `multipart/form-data` to
`/webhooks/sendgrid/inbound/<secret>`; the secret path part is the only
credential SendGrid can carry, so it is compared in constant time, and the
route does not exist (404) while `DOSSIER_INBOUND_SECRET` is unset.

Both of SendGrid's modes are read:

- raw ("send raw" on): the field `email` holds the whole MIME message.
- parsed: `headers`, `from`, `to`, `subject`, `text`, `html`, `charsets`
  (JSON: each text field's charset), `attachment-info` (JSON) and the files
  `attachment1..N`; the mail is put back together before it is archived.

Form fields are read as bytes and decoded with the charset SendGrid declares
for them, so a body in ISO-8859-1 arrives intact. The envelope's recipients
decide the route (see `adapters.inbound`). SendGrid retries on anything but
2xx, and archive writes are content-addressed, so a retry stores nothing
twice. A body over `DOSSIER_INBOUND_MAX_BYTES` is refused with 413.
"""

from __future__ import annotations

import codecs
import hmac
import json
from dataclasses import dataclass
from email import policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from python_multipart.multipart import MultipartParser, parse_options_header

from adapters.inbound import MailTooLarge, parse_mail, receive_mail
from web.limits import header_number

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger(__name__)

MAX_PARTS = 200
COPIED_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
)


@dataclass
class FormPart:
    name: str
    filename: str | None
    content_type: str
    data: bytes


@router.post("/webhooks/sendgrid/inbound/{secret}")
async def sendgrid_inbound(secret: str, request: Request) -> JSONResponse:
    """Archive and route one mail received by SendGrid; answer 200."""
    settings = request.app.state.settings
    _check_secret(secret, settings.inbound_secret)
    limit = settings.inbound_max_bytes
    body = await _read_body(request, limit)
    parts = _parse_form(request.headers.get("content-type", ""), body)

    raw = _first(parts, "email")
    message: bytes | EmailMessage = raw.data if raw else _rebuild(parts)
    recipients = _recipients(parts, message)
    services = request.app.state.services
    try:
        result = await receive_mail(
            message,
            recipients=recipients,
            archive=services.archive,
            session_factory=services.session_factory,
            intake=services.intake,
            mail_domain=settings.mail_domain,
            max_bytes=limit,
        )
    except MailTooLarge as error:
        raise HTTPException(413, str(error)) from None
    return JSONResponse(result.as_json(), status_code=200)


def _check_secret(given: str, configured: Any) -> None:
    if configured is None or not configured.get_secret_value():
        raise HTTPException(404, "Not Found")
    expected = configured.get_secret_value().encode()
    if not hmac.compare_digest(given.encode(), expected):
        log.warning("sendgrid.inbound_wrong_secret")
        raise HTTPException(404, "Not Found")


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) once it passes `limit` bytes."""
    too_large = f"the mail is larger than {limit // 2**20} MB"
    declared = header_number(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise HTTPException(413, too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, too_large)
    return bytes(body)


def _parse_form(content_type: str, body: bytes) -> list[FormPart]:
    """Every part of a multipart/form-data body, values kept as bytes."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(400, "SendGrid posts multipart/form-data")

    parts: list[FormPart] = []
    state: dict[str, Any] = {}

    def part_begin() -> None:
        state.update(headers={}, field=b"", value=b"", data=bytearray())
        if len(parts) >= MAX_PARTS:
            raise HTTPException(400, f"more than {MAX_PARTS} form parts")

    def header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state.update(field=b"", value=b"")

    def part_data(data: bytes, start: int, end: int) -> None:
        state["data"] += data[start:end]

    def part_end() -> None:
        headers = state["headers"]
        _, disposition = parse_options_header(headers.get(b"content-disposition"))
        kind, _ = parse_options_header(headers.get(b"content-type"))
        filename = disposition.get(b"filename")
        parts.append(
            FormPart(
                name=disposition.get(b"name", b"").decode("utf-8", "replace"),
                filename=filename.decode("utf-8", "replace") if filename else None,
                content_type=kind.decode("latin-1") or "application/octet-stream",
                data=bytes(state["data"]),
            )
        )

    callbacks: Any = {
        "on_part_begin": part_begin,
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_header_end": header_end,
        "on_part_data": part_data,
        "on_part_end": part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except HTTPException:
        raise
    except Exception:  # python-multipart raises several kinds on bad input
        raise HTTPException(400, "the form cannot be read as multipart") from None
    return parts


def _first(parts: list[FormPart], name: str) -> FormPart | None:
    return next((part for part in parts if part.name == name), None)


def _text(parts: list[FormPart], name: str, charsets: dict[str, str]) -> str | None:
    """A text field decoded with the charset SendGrid declared for it."""
    part = _first(parts, name)
    if part is None:
        return None
    charset = charsets.get(name) or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return part.data.decode(charset, "replace")


def _json_field(parts: list[FormPart], name: str) -> dict[str, Any]:
    part = _first(parts, name)
    if part is None:
        return {}
    try:
        value = json.loads(part.data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _rebuild(parts: list[FormPart]) -> EmailMessage:
    """The mail put back together from SendGrid's parsed fields."""
    charsets = {k: str(v) for k, v in _json_field(parts, "charsets").items()}
    message = EmailMessage(policy=policy.default)
    _copy_headers(message, parts, charsets)

    text = _text(parts, "text", charsets)
    html = _text(parts, "html", charsets)
    message.set_content(text or "")
    if html:
        message.add_alternative(html, subtype="html")

    info = _json_field(parts, "attachment-info")
    for part in parts:
        if part.filename is None or not part.name.startswith("attachment"):
            continue
        described = info.get(part.name)
        described = described if isinstance(described, dict) else {}
        filename = str(described.get("filename") or part.filename)
        maintype, _, subtype = str(
            described.get("type") or part.content_type
        ).partition("/")
        if not (maintype.isascii() and subtype.isascii() and subtype):
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(
            part.data,
            maintype=maintype if maintype != "text" else "application",
            subtype=subtype if maintype != "text" else "octet-stream",
            filename=filename,
        )
    return message


def _copy_headers(
    message: EmailMessage, parts: list[FormPart], charsets: dict[str, str]
) -> None:
    """Headers from SendGrid's `headers` field, else from `from`, `to`, `subject`."""
    raw = _first(parts, "headers")
    original = BytesHeaderParser(policy=policy.default).parsebytes(
        raw.data if raw else b""
    )
    registry = HeaderRegistry()
    for name in COPIED_HEADERS:
        value = original.get(name)
        if value is None and name.lower() in ("from", "to", "subject"):
            value = _text(parts, name.lower(), charsets)
        if not value:
            continue
        try:
            registry(name, str(value))  # refuses what cannot be written back
            message[name] = str(value)
        except (ValueError, TypeError, IndexError):
            log.info("sendgrid.inbound_header_dropped", header=name)


def _recipients(parts: list[FormPart], message: bytes | EmailMessage) -> list[str]:
    """The envelope's recipients; else the mail's To and Cc."""
    envelope = _json_field(parts, "envelope")
    to = envelope.get("to")
    if isinstance(to, list) and all(isinstance(a, str) for a in to) and to:
        return to
    if isinstance(message, bytes):
        message = parse_mail(message)
    fields = [str(message.get(name, "")) for name in ("to", "cc")]
    return [address for _, address in getaddresses(fields) if address]
