"""SendGrid's event webhook: signed batches posted as SendGrid posts them.

A key pair is made for the test; the app holds the public key as SendGrid
shows it (base64 DER) and the records are a migrated SQLite file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
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
from temporalio.client import WorkflowHandle

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import OutboxMailer
from adapters.records import Dossier, Provider, Task, TimelineEvent, save_dossier
from tests.factories import training_dossier
from web.sendgrid_events import router
from worker import build_worker
from workflows.dossier import DossierWorkflow
from workflows.messages import DetailsInput, DossierStatus, Step

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
    """An app with only the webhook router, its key and records on app.state.

    The dossier the events name is on record.
    """
    with session_factory.begin() as session:
        save_dossier(session, training_dossier(), f"dossier-{DOSSIER_ID}")
    async for client in _webhook_app(settings, session_factory, private_key, None):
        yield client


@pytest.fixture
async def told_webhook(
    time_skipping_env, settings, session_factory, private_key
) -> AsyncIterator[httpx.AsyncClient]:
    """The webhook app with a Temporal client and a worker with real activities."""
    archive = LocalArchive(settings.archive_dir)
    activities = DossierActivities(
        settings=settings,
        session_factory=session_factory,
        archive=archive,
        mailer=OutboxMailer(settings.outbox_dir),
    )
    async with build_worker(time_skipping_env.client, settings, activities):
        async for client in _webhook_app(
            settings, session_factory, private_key, time_skipping_env.client
        ):
            yield client


async def _webhook_app(
    settings, session_factory, private_key, temporal_client
) -> AsyncIterator[httpx.AsyncClient]:
    public_der = private_key.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    app = FastAPI()
    app.state.settings = settings.model_copy(
        update={"sendgrid_webhook_public_key": base64.b64encode(public_der).decode()}
    )
    app.state.services = SimpleNamespace(
        session_factory=session_factory, client=temporal_client
    )
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


@pytest.mark.parametrize(
    "timestamp",
    ["9" * 5000, "1.7e9", "-1", ""],
    ids=["5000 digits", "float", "negative", "empty"],
)
async def test_timestamp_that_is_no_plain_number_is_refused(
    webhook, private_key, session_factory, timestamp: str
) -> None:
    """A timestamp header that is no short run of ASCII digits gets 403, not 500."""
    body = json.dumps([event("delivered", "ev-1")]).encode()
    headers = signed(private_key, body)
    headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp

    response = await webhook.post(URL, content=body, headers=headers)

    assert response.status_code == 403
    assert timeline(session_factory) == []


async def test_content_length_of_5000_digits_is_no_crash(
    webhook, private_key, session_factory
) -> None:
    """A declared length int() cannot read is ignored; the real body counts."""
    body = json.dumps([event("delivered", "ev-1")]).encode()
    headers = signed(private_key, body)

    request = webhook.build_request("POST", URL, content=body, headers=headers)
    request.headers["content-length"] = "9" * 5000
    response = await webhook.send(request)

    assert response.status_code < 500


async def test_event_of_a_dossier_not_on_record_is_not_kept(
    webhook, private_key, session_factory
) -> None:
    """A signed event naming no dossier we know leaves no orphan line."""
    body = json.dumps([event("delivered", "ev-x", dossier_id="no-such")]).encode()

    response = await webhook.post(URL, content=body, headers=signed(private_key, body))

    assert response.status_code == 204
    assert timeline(session_factory) == []


async def test_a_message_id_that_is_no_text_is_left_out(
    webhook, private_key, session_factory
) -> None:
    """Only a string is kept as the message id."""
    body = json.dumps([event("delivered", "ev-o", message_id={"$ne": 1})]).encode()

    response = await webhook.post(URL, content=body, headers=signed(private_key, body))

    assert response.status_code == 204
    [(_, _, detail, _)] = timeline(session_factory)
    assert json.loads(detail)["message_id"] is None


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


async def running_dossier(client, settings, session_factory) -> WorkflowHandle:
    """A training dossier of its own, waiting for its application, on record."""
    number = f"BOUNCE-{uuid.uuid4().hex[:8].upper()}"
    base = training_dossier()
    dossier = training_dossier(
        dossier_id=f"0412345614-{number.lower()}",
        invoice_number=number,
        client=replace(base.client, has_platform_account=True),
    )
    handle = await client.start_workflow(
        DossierWorkflow.run,
        dossier,
        id=f"dossier-{dossier.dossier_id}",
        task_queue=settings.task_queue,
    )
    with session_factory() as session, session.begin():
        if session.get(Provider, "0412345614") is None:
            session.add(
                Provider(
                    provider_id="0412345614",
                    name=dossier.provider.name,
                    dv_numbers=[],
                    container_email=dossier.provider.container_email,
                )
            )
            session.flush()
        session.add(
            Dossier(
                dossier_id=dossier.dossier_id,
                workflow_id=handle.id,
                provider_id="0412345614",
                invoice_number=number,
                kind="training",
                client_name=dossier.client.name,
                client_enterprise_number=dossier.client.enterprise_number,
                step="application",
            )
        )
    return handle


async def status_when(
    handle: WorkflowHandle, check: Callable[[DossierStatus], bool]
) -> DossierStatus:
    for _ in range(600):
        status = await handle.query(DossierWorkflow.status)
        if check(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached; last status: {status}")


async def test_bounce_opens_one_staff_task_on_the_dossier(
    told_webhook, private_key, settings, session_factory, time_skipping_env
) -> None:
    """A bounce, posted twice, gives one review task in the status and records."""
    handle = await running_dossier(time_skipping_env.client, settings, session_factory)
    dossier_id = handle.id.removeprefix("dossier-")
    await status_when(handle, lambda s: s.step == Step.APPLICATION)
    bounce = event(
        "bounce",
        "ev-bounce-1",
        type="bounce",
        status="5.1.1",
        email="wrong@bakkerij.example",
        dossier_id=dossier_id,
    )
    body = json.dumps([bounce, event("delivered", "ev-d", dossier_id=dossier_id)])

    for _ in range(2):  # SendGrid posts the batch again
        response = await told_webhook.post(
            URL, content=body.encode(), headers=signed(private_key, body.encode())
        )
        assert response.status_code == 204

    status = await status_when(handle, lambda s: bool(reviews(s)))
    [task] = reviews(status)
    assert (task.kind, task.step) == ("review", Step.APPLICATION)
    assert task.reason == (
        "mail to wrong@bakkerij.example bounced (5.1.1): check the address, then resend"
    )
    assert [e.event for e in status.timeline].count("mail.bounce") == 1
    await _until_recorded(session_factory, task.task_id)

    await handle.signal(
        DossierWorkflow.update_details, DetailsInput(client_email="an@bakkerij.be")
    )
    status = await status_when(handle, lambda s: not reviews(s))
    await handle.terminate("test done")


def reviews(status: DossierStatus) -> list:
    """The open review tasks. The session's time-skipping clock may be years
    past the factory's dates by now, which adds a call task for the deadline."""
    return [task for task in status.open_tasks if task.kind == "review"]


async def test_event_of_a_closed_dossier_is_still_recorded(
    told_webhook, private_key, settings, session_factory, time_skipping_env
) -> None:
    """A bounce for a dossier whose workflow ended is kept on the timeline."""
    handle = await running_dossier(time_skipping_env.client, settings, session_factory)
    await handle.terminate("closed before the bounce")
    dossier_id = handle.id.removeprefix("dossier-")
    body = json.dumps([event("bounce", "ev-late", dossier_id=dossier_id)]).encode()

    response = await told_webhook.post(
        URL, content=body, headers=signed(private_key, body)
    )

    assert response.status_code == 204
    assert [line[:2] for line in timeline(session_factory)] == [
        (dossier_id, "mail.bounce")
    ]


async def _until_recorded(session_factory, task_id: str) -> None:
    for _ in range(600):
        with session_factory() as session:
            if session.get(Task, task_id) is not None:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} never reached the records")
