"""SendGrid's Signed Event Webhook: what became of each mail, on its dossier.

SendGrid posts a JSON list of events, signed with ECDSA P-256 over the
timestamp header followed by the raw body. A request is checked before its
body is read as JSON: a missing or wrong signature, or a timestamp more than
five minutes away, is refused (403). Delivered, bounce, dropped and
spamreport events of our own mails (the `dossier_id` and `message_id` custom
args come back on each event) become timeline lines `mail.<event>`; other
events are ignored. SendGrid retries a delivery, so an event is recorded once
per `sg_event_id`, kept as the line's source. The answer is 204.

A bounce, drop or spam report also goes to the dossier's workflow as the
`record_mail_event` signal, which opens a task for staff and shows in the
`status` query. The signal is sent before the line is recorded: when Temporal
cannot be reached the answer is 503 and SendGrid posts the batch again; the
workflow ignores an event id it has seen.

The route reads `request.app.state.settings` (for the public key) and
`request.app.state.services.session_factory`.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from adapters.records import Dossier, TimelineEvent, add_timeline_once
from web.limits import header_number
from workflows.messages import MailEventInput

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_BODY_BYTES = 1024 * 1024
MAX_AGE_SECONDS = 5 * 60
RECORDED_EVENTS = frozenset({"delivered", "bounce", "dropped", "spamreport"})
STAFF_EVENTS = frozenset({"bounce", "dropped", "spamreport"})
SOURCE_PREFIX = "sendgrid:"


@router.post("/webhooks/sendgrid/events", status_code=204)
async def sendgrid_events(request: Request) -> Response:
    """Record what SendGrid reports of our mails; answer 204."""
    key = _public_key(request.app.state.settings.sendgrid_webhook_public_key)
    body = await _read_body(request)
    _verify(key, request, body)
    events = _parse(body)

    services = request.app.state.services
    sessions = services.session_factory
    await _tell_workflows(getattr(services, "client", None), sessions, events)
    recorded = await run_in_threadpool(_record, sessions, events)
    log.info("sendgrid.events_received", received=len(events), recorded=recorded)
    return Response(status_code=204)


def _public_key(configured: str | None) -> ec.EllipticCurvePublicKey:
    if not configured:
        log.error("sendgrid.webhook_key_missing")
        raise HTTPException(503, "the SendGrid event webhook is not configured")
    try:
        key = load_der_public_key(base64.b64decode(configured, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        log.error("sendgrid.webhook_key_unreadable")
        raise HTTPException(
            503, "the SendGrid event webhook key cannot be read"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        log.error("sendgrid.webhook_key_not_ecdsa")
        raise HTTPException(503, "the SendGrid event webhook key is not ECDSA")
    return key


async def _read_body(request: Request) -> bytes:
    """The raw body, refused (413) once it passes MAX_BODY_BYTES."""
    declared = header_number(request.headers.get("content-length", ""))
    if declared is not None and declared > MAX_BODY_BYTES:
        raise HTTPException(413, "the event batch is larger than 1 MB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, "the event batch is larger than 1 MB")
    return bytes(body)


def _verify(key: ec.EllipticCurvePublicKey, request: Request, body: bytes) -> None:
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    seconds = header_number(timestamp)
    if not signature or seconds is None:
        log.warning("sendgrid.events_unsigned")
        raise HTTPException(403, "the event batch is not signed")
    if abs(time.time() - seconds) > MAX_AGE_SECONDS:
        log.warning("sendgrid.events_stale", timestamp=seconds)
        raise HTTPException(
            403, "the event batch's timestamp is more than 5 minutes off"
        )
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode("ascii") + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        log.warning("sendgrid.events_bad_signature")
        raise HTTPException(403, "the event batch's signature is wrong") from None


def _parse(body: bytes) -> list[dict[str, Any]]:
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the event batch is not JSON") from None
    if not isinstance(events, list):
        raise HTTPException(400, "the event batch is not a JSON list")
    return [event for event in events if isinstance(event, dict)]


async def _tell_workflows(
    client: Client | None,
    sessions: sessionmaker[Session],
    events: list[dict[str, Any]],
) -> None:
    """Signal each new bounce, drop or spam report to its dossier's workflow."""
    if client is None:
        return
    for event in events:
        line = _timeline_line(event)
        if line is None or event["event"] not in STAFF_EVENTS:
            continue
        workflow_id = await run_in_threadpool(_workflow_of, sessions, line)
        if workflow_id is None:
            continue
        signal = MailEventInput(
            event=event["event"],
            event_id=event["sg_event_id"],
            message_id=_text(event.get("message_id")),
            recipient=_text(event.get("email")),
            status=_text(event.get("status")),
        )
        try:
            await client.get_workflow_handle(workflow_id).signal(
                "record_mail_event", signal
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                log.warning("sendgrid.signal_failed", workflow_id=workflow_id)
                raise HTTPException(503, "the dossier cannot be told now") from None
            log.info("sendgrid.dossier_closed", workflow_id=workflow_id)
        else:
            log.info(
                "sendgrid.dossier_told", workflow_id=workflow_id, kind=event["event"]
            )


def _workflow_of(sessions: sessionmaker[Session], line: TimelineEvent) -> str | None:
    """The workflow of the line's dossier, unless this event was recorded before."""
    with sessions() as session:
        seen = session.scalar(
            select(TimelineEvent.id).where(TimelineEvent.source == line.source)
        )
        if seen is not None:
            return None
        return session.scalar(
            select(Dossier.workflow_id).where(Dossier.dossier_id == line.dossier_id)
        )


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def _record(sessions: sessionmaker[Session], events: list[dict[str, Any]]) -> int:
    """Add one timeline line per new event of ours; return how many were added."""
    recorded = 0
    for event in events:
        line = _timeline_line(event)
        if line is None:
            continue
        with sessions() as session:
            known = session.get(Dossier, line.dossier_id) is not None
        if not known:
            log.warning("sendgrid.event_unknown_dossier", kind=line.event)
            continue  # signed, so ours, but of no dossier on record
        recorded += add_timeline_once(sessions, line)
    return recorded


def _timeline_line(event: dict[str, Any]) -> TimelineEvent | None:
    """The line for one event, or None for events that are not recorded.

    Bounces keep SendGrid's type and SMTP status code; the reason text is left
    out, since it often quotes the recipient's address.
    """
    kind = event.get("event")
    dossier_id = event.get("dossier_id")
    event_id = event.get("sg_event_id")
    if kind not in RECORDED_EVENTS or not isinstance(dossier_id, str):
        return None
    if not isinstance(event_id, str) or not event_id or not dossier_id:
        log.warning("sendgrid.event_without_id", event=kind)
        return None

    detail = {"sg_event_id": event_id, "message_id": _text(event.get("message_id"))}
    for name in ("type", "status"):
        if isinstance(event.get(name), str):
            detail[name] = event[name]
    return TimelineEvent(
        dossier_id=dossier_id[:100],
        at=_event_time(event.get("timestamp")),
        event=f"mail.{kind}",
        detail=json.dumps(detail, sort_keys=True),
        step=None,
        source=f"{SOURCE_PREFIX}{event_id}"[:400],
    )


def _event_time(timestamp: Any) -> datetime:
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(timestamp, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)
