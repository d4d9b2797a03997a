"""SendGrid's event webhook: signed batches posted as SendGrid posts them.

A key pair is made for the test; the app holds the public key as SendGrid
shows it (base64 DER) and the records are a migrated SQLite file.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)
from fastapi import FastAPI
from sendgrid.helpers.eventwebhook import (  # type: ignore[import-untyped]  # no hints
    EventWebhook,
)
from sqlalchemy import select

from adapters.records import TimelineEvent
from web.sendgrid_events import router

URL = "/webhooks/sendgrid/events"
DOSSIER_ID = "0412345614-ls-2026-0141"
MESSAGE_ID = "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>"


@pytest.fixture(scope="module")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def webhook(
    settings, session_factory, private_key
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with only the webhook router, its key and records on app.state."""
    public_der = private_key.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    app = FastAPI()
    app.state.settings = settings.model_copy(
        update={"sendgrid_webhook_public_key": base64.b64encode(public_der).decode()}
    )
    app.state.services = SimpleNamespace(session_factory=session_factory)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as client:
        yield client


def signed(
    key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers SendGrid sends: timestamp, and the signature of timestamp+body."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def event(kind: str, sg_event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": "an.peeters@bakkerij-peeters.example",
        "timestamp": 1796115600,
        "event": kind,
        "sg_event_id": sg_event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "dossier_id": DOSSIER_ID,
        "message_id": MESSAGE_ID,
        **fields,
    }


def timeline(session_factory) -> list[tuple[str, str, str, str | None]]:
    with session_factory() as session:
        rows = session.scalars(select(TimelineEvent).order_by(TimelineEvent.id))
        return [
            (row.dossier_id, row.event, row.detail, row.at.isoformat()) for row in rows
        ]


async def test_signed_batch_is_recorded_per_message(
    webhook, private_key, session_factory
) -> None:
    """A well-signed batch answers 204 and adds the four kinds of events we keep."""
    body = json.dumps(
        [
            event("processed", "ev-processed"),
            event("delivered", "ev-delivered"),
            event("bounce", "ev-bounce", type="bounce", status="5.1.1", reason="x"),
            event("dropped", "ev-dropped"),
            event("spamreport", "ev-spam"),
            {**event("delivered", "ev-other"), "dossier_id": None},
        ]
    ).encode()

    response = await webhook.post(URL, content=body, headers=signed(private_key, body))

    assert response.status_code == 204
    assert timeline(session_factory) == [
        (
            "0412345614-ls-2026-0141",
            "mail.delivered",
            '{"message_id": "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>",'
            ' "sg_event_id": "ev-delivered"}',
            "2026-12-01T09:00:00+00:00",
        ),
        (
            "0412345614-ls-2026-0141",
            "mail.bounce",
            '{"message_id": "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>",'
            ' "sg_event_id": "ev-bounce", "status": "5.1.1", "type": "bounce"}',
            "2026-12-01T09:00:00+00:00",
        ),
        (
            "0412345614-ls-2026-0141",
            "mail.dropped",
            '{"message_id": "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>",'
            ' "sg_event_id": "ev-dropped"}',
            "2026-12-01T09:00:00+00:00",
        ),
        (
            "0412345614-ls-2026-0141",
            "mail.spamreport",
            '{"message_id": "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>",'
            ' "sg_event_id": "ev-spam"}',
            "2026-12-01T09:00:00+00:00",
        ),
    ]


def test_test_signature_is_one_sendgrids_own_verifier_accepts(
    private_key,
) -> None:
    """The headers these tests sign pass the `sendgrid` library's own check."""
    body = json.dumps([event("delivered", "ev-1")]).encode()
    headers = signed(private_key, body)
    public_der = private_key.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    verifier = EventWebhook(base64.b64encode(public_der).decode())

    assert verifier.verify_signature(
        body.decode(),
        headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"],
    )


async def test_bad_signature_is_refused(webhook, private_key, session_factory) -> None:
    """A body that is not the one signed is refused with 403 and nothing recorded."""
    signed_body = json.dumps([event("delivered", "ev-1")]).encode()
    other_body = json.dumps([event("delivered", "ev-2")]).encode()

    response = await webhook.post(
        URL, content=other_body, headers=signed(private_key, signed_body)
    )

    assert response.status_code == 403
    assert timeline(session_factory) == []


async def test_signature_of_another_key_is_refused(webhook, session_factory) -> None:
    """A batch signed with a key other than the configured one gets 403."""
    body = json.dumps([event("delivered", "ev-1")]).encode()
    stranger = ec.generate_private_key(ec.SECP256R1())

    response = await webhook.post(URL, content=body, headers=signed(stranger, body))

    assert response.status_code == 403
    assert timeline(session_factory) == []


async def test_unsigned_batch_is_refused(webhook, session_factory) -> None:
    """A batch without the signature headers gets 403."""
    body = json.dumps([event("delivered", "ev-1")]).encode()

    response = await webhook.post(
        URL, content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 403
    assert timeline(session_factory) == []


async def test_stale_timestamp_is_refused(
    webhook, private_key, session_factory
) -> None:
    """A correctly signed batch stamped six minutes ago gets 403."""
    body = json.dumps([event("delivered", "ev-1")]).encode()
    six_minutes_ago = int(time.time()) - 360

    response = await webhook.post(
        URL, content=body, headers=signed(private_key, body, six_minutes_ago)
    )

    assert response.status_code == 403
    assert timeline(session_factory) == []


async def test_replayed_event_is_recorded_once(
    webhook, private_key, session_factory
) -> None:
    """The same sg_event_id posted twice, freshly signed each time, gives one line."""
    body = json.dumps([event("delivered", "ev-1")]).encode()

    first = await webhook.post(URL, content=body, headers=signed(private_key, body))
    second = await webhook.post(URL, content=body, headers=signed(private_key, body))

    assert (first.status_code, second.status_code) == (204, 204)
    assert [line[1] for line in timeline(session_factory)] == ["mail.delivered"]


async def test_oversized_batch_is_refused(
    webhook, private_key, session_factory
) -> None:
    """A body over 1 MB gets 413 before anything is checked or recorded."""
    body = b"[" + b" " * (1024 * 1024) + b"]"

    response = await webhook.post(URL, content=body, headers=signed(private_key, body))

    assert response.status_code == 413
    assert timeline(session_factory) == []


async def test_batch_that_is_not_a_json_list_is_refused(
    webhook, private_key, session_factory
) -> None:
    """A signed body that is not a JSON list of events gets 400."""
    body = b'{"event": "delivered"}'

    response = await webhook.post(URL, content=body, headers=signed(private_key, body))

    assert response.status_code == 400
    assert timeline(session_factory) == []
