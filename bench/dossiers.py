"""Dossiers for the benchmark: invoices to upload and happy paths to drive.

Every dossier is a training with one participant, made from the example
invoice with its own invoice number. Driven dossiers have their training
yesterday, so no wait sleeps until a session day; the staff signals of
every step but one are sent right after the start (the workflow keeps a
signal that arrives before its step), and the payment signal is sent once
the payment order mail is out and the dossier waits for it, as a client's
bank would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from adapters.mail import OutboxMailer, message_id_for
from adapters.settings import Settings
from bench.baseline import BaselinePlan, BaselineWorkflow, StepSignal
from bench.stack import PROJECT, Stack
from kmo.calendar import local_date
from starter.client import workflow_id
from starter.intake import UploadDetails, prepare
from workflows import search
from workflows.dossier import DossierWorkflow
from workflows.messages import (
    ApplicationInput,
    DepositInput,
    Document,
    DossierInput,
    Participant,
    PaymentInput,
    SignatureInput,
)

INVOICE = PROJECT / "examples" / "invoices" / "training-open-1p.xml"
INVOICE_NUMBER = "LS-2026-0141"
CLIENT_NUMBER = "0511223355"  # the example's client, in every form it appears
PARTICIPANT = Participant("An Peeters", "an.peeters@bakkerij-peeters.example")
FIRST_MAIL = "onboarding"  # the client has no platform account yet
POLL_SECONDS = 0.01
MAIL_TIMEOUT_SECONDS = 120


def invoice_bytes(number: str) -> bytes:
    """The example invoice under another invoice number, to a client of its own.

    One client per invoice, as in life: intake looks at the client's earlier
    dossiers (the subsidy cap), so a thousand invoices to one client would
    measure that client's history rather than an upload.
    """
    text = INVOICE.read_text(encoding="utf-8")
    text = text.replace(
        f"<cbc:ID>{INVOICE_NUMBER}</cbc:ID>", f"<cbc:ID>{number}</cbc:ID>", 1
    )
    return text.replace(CLIENT_NUMBER, client_number(number)).encode("utf-8")


def client_number(invoice_number: str) -> str:
    """A valid Belgian enterprise number derived from the invoice number."""
    first = f"{4_000_000 + zlib.crc32(invoice_number.encode()) % 5_000_000:08d}"
    return f"{first}{97 - int(first) % 97:02d}"


def upload_details() -> UploadDetails:
    return UploadDetails(participants=[PARTICIPANT])


def first_mail_path(settings: Settings, dossier_id: str) -> Path:
    """Where the outbox writes the dossier's first mail (named by Message-ID)."""
    key = f"{workflow_id(dossier_id)}/{FIRST_MAIL}/0"
    message = EmailMessage()
    message["Message-ID"] = message_id_for(key, settings.mail_domain)
    return OutboxMailer(settings.outbox_dir).path_for(message)


async def upload_and_time_first_mail(stack: Stack, number: str) -> float:
    """Seconds from `IntakeService.submit` to the first mail's file in the outbox."""
    started = time.time_ns()
    result = await stack.intake.submit(
        invoice_bytes(number), f"{number}.xml", "application/xml", upload_details()
    )
    path = first_mail_path(stack.settings, result.dossier_id)
    deadline = time.monotonic() + MAIL_TIMEOUT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no first mail for {result.dossier_id} in time")
        await asyncio.sleep(POLL_SECONDS)
    return (path.stat().st_mtime_ns - started) / 1e9


def driven_dossier(number: str) -> DossierInput:
    """A dossier whose training was yesterday: its waits end on signals only."""
    prepared = prepare(invoice_bytes(number), f"{number}.xml", upload_details())
    assert prepared.dossier is not None, prepared.problems
    yesterday = local_date(datetime.now(UTC)) - timedelta(days=1)
    return replace(
        prepared.dossier,
        invoice_date=yesterday,
        start_date=yesterday,
        end_date=yesterday,
        session_dates=[],
    )


def search_attributes(dossier: DossierInput) -> TypedSearchAttributes:
    """The attributes intake starts a dossier with."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(search.STEP, "received"),
            SearchAttributePair(search.KIND, dossier.kind.value),
            SearchAttributePair(search.PROVIDER, dossier.provider.provider_id),
            SearchAttributePair(search.CLIENT, dossier.client.enterprise_number),
        ]
    )


async def start_dossier(
    client: Client,
    settings: Settings,
    dossier: DossierInput,
    task_queue: str | None = None,
) -> WorkflowHandle:
    """Start a dossier as intake does; on the dossier worker's queue by default."""
    return await client.start_workflow(
        DossierWorkflow.run,
        dossier,
        id=workflow_id(dossier.dossier_id),
        task_queue=task_queue or settings.task_queue,
        search_attributes=search_attributes(dossier),
    )


async def signals_ahead(handle: WorkflowHandle) -> None:
    """Every staff signal of the happy path but the payment."""
    name = PARTICIPANT.name
    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-1"))
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.TERMS, name)
    )
    await handle.signal(DossierWorkflow.record_deposit, DepositInput())
    await handle.signal(
        DossierWorkflow.record_signature,
        SignatureInput(Document.ATTENDANCE, name, participant=name),
    )
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.SATISFACTION, name)
    )


async def timer_started(handle: WorkflowHandle, count: int = 1) -> None:
    """Wait until the workflow started its `count`-th timer: it waits for us.

    Read from the server's history with a long poll, the same way for the
    dossier and the baseline, so neither driver is quicker to answer.
    """
    seen = 0
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            seen += 1
            if seen == count:
                return
    raise RuntimeError(f"{handle.id} closed before its timer {count}")


async def drive_dossier(
    stack: Stack, number: str, task_queue: str | None = None
) -> str:
    """One dossier from start to close along the happy path; its workflow id.

    On the dossier worker's queue unless `task_queue` names another (the
    workflow-only worker's).
    """
    dossier = driven_dossier(number)
    handle = await start_dossier(stack.client, stack.settings, dossier, task_queue)
    await signals_ahead(handle)
    await timer_started(handle)  # the payment order is out; the wait began
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    result = await handle.result()
    if result.outcome.value != "closed":
        raise RuntimeError(f"{dossier.dossier_id} ended {result.outcome.value}")
    return handle.id


async def drive_baseline(stack: Stack, plan: BaselinePlan) -> str:
    """One baseline run, signalled as the dossier is: ahead, then at each wait."""
    handle = await stack.client.start_workflow(
        BaselineWorkflow.run,
        plan,
        id=f"baseline-{uuid.uuid4().hex}",
        task_queue=stack.baseline_queue,
    )
    for number in range(1, plan.signals_ahead + 1):
        await handle.signal(BaselineWorkflow.step, StepSignal(number))
    for wait in range(1, len(plan.activities_per_wait) + 1):
        await timer_started(handle, wait)
        await handle.signal(
            BaselineWorkflow.step, StepSignal(plan.signals_ahead + wait)
        )
    await handle.result()
    return handle.id


def plan_from_history(history: WorkflowHistory) -> BaselinePlan:
    """The baseline's plan: the dossier's activities split at its timers."""
    per_wait: list[int] = []
    activities = signals = 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities += 1
        elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            per_wait.append(activities)
            activities = 0
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signals += 1
    return BaselinePlan(per_wait, activities, signals - len(per_wait))
