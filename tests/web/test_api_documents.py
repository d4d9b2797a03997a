"""`POST /api/dossiers/{id}/documents` on a real SQLite database and archive.

The app talks to Temporal's time-skipping test server, with a worker running
the real activities; the final report test drives a real advice dossier to
its final report step. Callers sign in as in `tests/web/api_users.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import OutboxMailer
from adapters.records import ArchiveItem, TimelineEvent, save_dossier
from kmo.calendar import local_date
from tests.factories import advice_dossier
from tests.web.api_users import (
    A_ADVICE,
    A_EMAIL,
    A_TRAINING,
    B_EMAIL,
    B_PROVIDER,
    B_TRAINING,
    OUTSIDE,
    add_records,
    basic,
    client_of,
)
from web import auth
from web.app import create_app
from web.staff import STAFF_TOKEN_ENV, STAFF_TOKEN_HEADER
from worker import build_worker
from workflows.dossier import DossierWorkflow
from workflows.messages import (
    ApplicationInput,
    Document,
    PaymentInput,
    SignatureInput,
    Step,
)

QUOTE = b"%PDF-1.4 offerte\n"
MB = 1024 * 1024
WRITTEN_ON = date(2026, 12, 3)  # the advice factory's dates are relative to this


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with small costs: the real ones take a second a hash here."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "PASSWORD_HASHER", cheap)


@pytest.fixture
def archive(settings) -> LocalArchive:
    return LocalArchive(settings.archive_dir)


@pytest.fixture
async def app(time_skipping_env, settings, session_factory, archive):
    """The app with its lifespan run, and a worker with the real activities."""
    add_records(session_factory)
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
    async with (
        build_worker(time_skipping_env.client, settings, activities),
        app.router.lifespan_context(app),
    ):
        yield app


@pytest.fixture
async def outside(app) -> AsyncIterator[httpx.AsyncClient]:
    """A caller from another machine."""
    async with client_of(app, OUTSIDE) as client:
        yield client


async def send(
    client: httpx.AsyncClient,
    dossier_id: str,
    headers: dict[str, str],
    document_type: str | None = "quote",
    filename: str = "offerte.pdf",
    data: bytes | None = QUOTE,
) -> httpx.Response:
    form = {} if document_type is None else {"type": document_type}
    files = {"document": (filename, data, "application/pdf")}
    if data is None:  # still a multipart form, just without the document
        files = {"note": ("note.txt", b"", "text/plain")}
    return await client.post(
        f"/api/dossiers/{dossier_id}/documents",
        data=form,
        files=files,
        headers=headers,
    )


def archived_keys(session_factory) -> list[str]:
    with session_factory() as session:
        return list(session.scalars(select(ArchiveItem.key)))


# --- archiving ---------------------------------------------------------------


async def test_a_providers_document_is_archived_under_its_dossier(
    outside, session_factory, archive
):
    """A's quote answers 201 with its key and SHA-256, archived and noted."""
    response = await send(outside, A_TRAINING, basic(A_EMAIL), filename="offerte.pdf")

    assert response.status_code == 201, response.text
    answer = response.json()
    digest = hashlib.sha256(QUOTE).hexdigest()
    assert answer == {
        "dossier_id": A_TRAINING,
        "type": "quote",
        "key": f"0412345614/{A_TRAINING}/{digest[:16]}-quote-offerte.pdf",
        "name": "quote-offerte.pdf",
        "sha256": digest,
        "size": len(QUOTE),
        "workflow_signalled": False,
    }
    assert hashlib.sha256(archive.get(answer["key"])).hexdigest() == digest
    with session_factory() as session:
        item = session.get(ArchiveItem, answer["key"])
        events = session.scalars(
            select(TimelineEvent.detail).where(TimelineEvent.dossier_id == A_TRAINING)
        ).all()
    assert (item.container, item.dossier_id) == ("0412345614", A_TRAINING)
    assert events == ["quote: quote-offerte.pdf"]


async def test_a_quote_for_an_advice_tells_no_workflow(outside):
    """Only an advice's final report goes to the workflow."""
    response = await send(outside, A_ADVICE, basic(A_EMAIL), document_type="quote")

    assert response.status_code == 201
    assert response.json()["workflow_signalled"] is False


async def test_a_document_of_6_mb_is_accepted_past_the_invoice_limit(outside):
    """The 5 MB invoice cap does not apply here: 6 MB answers 201."""
    data = b"%PDF-1.4\n" + b" " * (6 * MB)

    response = await send(outside, A_TRAINING, basic(A_EMAIL), data=data)

    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(data)


# --- refusals ----------------------------------------------------------------


async def test_anonymous_caller_gets_401(outside, session_factory):
    """Without a sign-in: 401 with the Basic challenge, nothing archived."""
    response = await send(outside, A_TRAINING, {})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="dossiers"'
    assert archived_keys(session_factory) == []


async def test_another_providers_dossier_answers_404_like_an_unknown_one(
    outside, session_factory
):
    """A uploading into B's dossier gets the 404 of an unknown id; nothing kept."""
    others = await send(outside, B_TRAINING, basic(A_EMAIL))
    unknown = await send(outside, "0712345036-nope", basic(A_EMAIL))

    assert others.status_code == 404
    assert others.json()["error"] == f"there is no dossier '{B_TRAINING}'"
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "there is no dossier '0712345036-nope'"
    assert archived_keys(session_factory) == []


@pytest.mark.parametrize(
    ("document_type", "field", "message"),
    [
        (
            "memo",
            "type",
            "'memo' is not a document type; "
            "send type as one of quote, invoice, final_report, other",
        ),
        (
            None,
            "type",
            "the upload has no type; "
            "send type as one of quote, invoice, final_report, other",
        ),
    ],
)
async def test_a_bad_or_missing_type_answers_422_naming_the_types(
    outside, session_factory, document_type, field, message
):
    """The answer names the field and the types that exist."""
    response = await send(
        outside, A_TRAINING, basic(A_EMAIL), document_type=document_type
    )

    assert response.status_code == 422
    assert response.json() == {
        "error": message,
        "problems": [{"code": "bad_type", "field": field, "message": message}],
    }
    assert archived_keys(session_factory) == []


async def test_a_missing_file_answers_422(outside):
    """A form without the document says which field to send."""
    response = await send(outside, A_TRAINING, basic(A_EMAIL), data=None)

    assert response.status_code == 422
    assert response.json()["problems"] == [
        {
            "code": "missing_file",
            "field": "document",
            "message": "the upload has no file; send it as the form field 'document'",
        }
    ]


async def test_an_empty_file_answers_422(outside):
    """An empty file is refused with the portal's words."""
    response = await send(outside, A_TRAINING, basic(A_EMAIL), data=b"")

    assert response.status_code == 422
    assert response.json()["error"] == "offerte.pdf is empty; choose another file"


@pytest.mark.parametrize("size", [20 * MB + 1, 21 * MB])
async def test_over_20_mb_answers_413(outside, session_factory, size):
    """One byte over 20 MB, or a body past the cap: 413 naming the limit."""
    response = await send(outside, A_TRAINING, basic(A_EMAIL), data=b"x" * size)

    assert response.status_code == 413
    assert response.json()["error"] == "the document is too large; the limit is 20 MB"
    assert archived_keys(session_factory) == []


# --- staff -------------------------------------------------------------------


async def test_the_staff_token_uploads_to_any_providers_dossier(
    outside, monkeypatch: pytest.MonkeyPatch
):
    """With the staff token a caller from elsewhere adds to B's dossier."""
    monkeypatch.setenv(STAFF_TOKEN_ENV, "s3cret-staff-token")

    response = await send(
        outside, B_TRAINING, {STAFF_TOKEN_HEADER: "s3cret-staff-token"}
    )

    assert response.status_code == 201
    assert response.json()["key"].startswith(f"{B_PROVIDER}/{B_TRAINING}/")


async def test_this_machine_uploads_without_signing_in(app):
    """From 127.0.0.1, as the `dossier` command calls, the upload is staff's."""
    async with client_of(app) as local:
        response = await send(local, B_TRAINING, {}, document_type="other")

    assert response.status_code == 201


# --- the final report reaches the workflow --------------------------------------


async def advice_at_final_report(env, settings, session_factory) -> WorkflowHandle:
    """A recorded advice dossier of B, run until it waits for its final report."""
    shift = local_date(await env.get_current_time()) - WRITTEN_ON
    base = advice_dossier()
    number = f"CVA-{uuid.uuid4().hex[:8].upper()}"
    dossier = replace(
        base,
        dossier_id=f"{B_PROVIDER}-{number.lower()}",
        invoice_number=number,
        client=replace(base.client, has_platform_account=True),
        invoice_date=base.invoice_date + shift,
        start_date=base.start_date + shift,
        end_date=base.end_date + shift,
    )
    workflow = f"dossier-{dossier.dossier_id}"
    with session_factory.begin() as session:
        save_dossier(session, dossier, workflow)
    handle = await env.client.start_workflow(
        DossierWorkflow.run, dossier, id=workflow, task_queue=settings.task_queue
    )
    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-1"))
    await step_becomes(handle, Step.TERMS)
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.TERMS, "Sofie")
    )
    await step_becomes(handle, Step.PAYMENT)
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    await step_becomes(handle, Step.SATISFACTION)
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.SATISFACTION, "S")
    )
    await step_becomes(handle, Step.FINAL_REPORT)
    return handle


async def step_becomes(handle: WorkflowHandle, step: Step) -> None:
    for _ in range(600):
        status = await handle.query(DossierWorkflow.status)
        if status.step == step:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the dossier stayed at {status.step}, not {step}")


async def test_a_final_report_through_the_api_reaches_the_advice_workflow(
    time_skipping_env, settings, session_factory, archive, outside
):
    """B's final report: archived, signalled, and the dossier moves on and closes."""
    handle = await advice_at_final_report(time_skipping_env, settings, session_factory)
    dossier_id = handle.id.removeprefix("dossier-")
    report = b"%PDF-1.4 eindrapport cyberveiligheid\n"
    try:
        response = await send(
            outside,
            dossier_id,
            basic(B_EMAIL),
            document_type="final_report",
            filename="eindrapport.pdf",
            data=report,
        )
        assert response.status_code == 201, response.text
        answer = response.json()

        for _ in range(600):  # the status as B reads it through the API
            status = (
                await outside.get(f"/api/dossiers/{dossier_id}", headers=basic(B_EMAIL))
            ).json()["status"]
            events = [entry["event"] for entry in status["timeline"]]
            if status["step"] != "final_report":
                break
            await asyncio.sleep(0.05)
        result = await handle.result()
    finally:
        try:
            await handle.terminate("test done")
        except RPCError:
            pass  # closed already

    assert answer["workflow_signalled"] is True
    assert answer["sha256"] == hashlib.sha256(report).hexdigest()
    assert hashlib.sha256(archive.get(answer["key"])).hexdigest() == answer["sha256"]
    assert status["step"] != "final_report"
    assert "final_report.uploaded" in events
    uploaded = [
        e["detail"] for e in status["timeline"] if e["event"] == "final_report.uploaded"
    ]
    assert uploaded == ["eindrapport.pdf"]
    assert result.outcome == Step.CLOSED
