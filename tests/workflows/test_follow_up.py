"""The payment follow-up on the time-skipping server, with the real activities.

A client that deposits its own share but never gives the payment order is the
case the follow-up exists for: the provider is never paid unless we chase.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kmo.calendar import is_working_day, local_date
from starter.client import DATA_CONVERTER
from starter.intake import UploadDetails, prepare
from worker import build_worker
from workflows.dossier import DossierWorkflow
from workflows.messages import (
    ApplicationInput,
    CallInput,
    CancelInput,
    DepositInput,
    DetailsInput,
    DossierInput,
    DossierStatus,
    FollowUpPolicy,
    PaymentInput,
    SkipInput,
    Step,
    Task,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "invoices"
HISTORIES = Path(__file__).parent / "histories"
WRITTEN_ON = date(2026, 12, 3)  # the fixtures' dates are relative to this day
POLICY = FollowUpPolicy(
    payment_order_days=14, payment_order_reminder_every_days=7, reminders_before_call=2
)


@pytest.fixture
def stack(tmp_path):
    """Settings pointing every embedded backend into a temporary folder."""
    from adapters.records import upgrade_database
    from adapters.settings import Settings

    settings = Settings(data_dir=tmp_path, task_queue=f"tq-{uuid.uuid4()}")
    upgrade_database(settings.database_url)
    return settings


@pytest.fixture
async def worker(stack):
    """A time-skipping server of this test alone, and a worker on it."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(
            Path(sys.executable).parent / "temporal-test-server"
        ),
        data_converter=DATA_CONVERTER,
    )
    async with env, build_worker(env.client, stack):
        yield env


async def dossier_from(env: WorkflowEnvironment, fixture: str) -> DossierInput:
    """The fixture's dossier with its dates moved to the test server's today."""
    data = (FIXTURES / fixture).read_bytes()
    details = UploadDetails(has_platform_account=True)
    prepared = prepare(data, fixture, details, today=WRITTEN_ON)
    assert prepared.dossier is not None, prepared.problems
    dossier = prepared.dossier
    shift = local_date(await env.get_current_time()) - WRITTEN_ON
    return replace(
        dossier,
        invoice_date=dossier.invoice_date + shift,
        start_date=dossier.start_date + shift,
        end_date=dossier.end_date + shift,
        policy=POLICY,
    )


async def start(env: WorkflowEnvironment, stack, dossier: DossierInput):
    return await env.client.start_workflow(
        DossierWorkflow.run,
        dossier,
        id=f"dossier-{dossier.dossier_id}-{uuid.uuid4().hex[:6]}",
        task_queue=stack.task_queue,
    )


async def until(
    handle: WorkflowHandle, check: Callable[[DossierStatus], bool]
) -> DossierStatus:
    """Poll the status query until `check` holds (up to 60 real seconds)."""
    for _ in range(1200):
        status = await handle.query(DossierWorkflow.status)
        if check(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached; last status: {status}")


async def keep_history(handle: WorkflowHandle, name: str) -> None:
    """With RECORD_HISTORIES=1, store the history so far for the replay test.

    A history already kept is left alone: it was recorded on older code.
    """
    path = HISTORIES / f"{name}.json"
    if os.environ.get("RECORD_HISTORIES") != "1" or path.exists():
        return
    history = await handle.fetch_history()
    path.write_text(history.to_json())


def templates_sent(status: DossierStatus) -> list[str]:
    return [e.detail.split(" #")[0] for e in status.timeline if e.event == "mail.sent"]


def open_calls(status: DossierStatus) -> list[Task]:
    return [t for t in status.open_tasks if t.kind == "call"]


def recorded_tasks(stack) -> dict[str, tuple[bool, str | None]]:
    """task id -> (done, outcome), as the records (and the staff page) see it."""
    from adapters.records import Task as TaskRow
    from adapters.records import make_engine, make_session_factory

    engine = make_engine(stack.database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(select(TaskRow)).all()
            return {row.task_id: (row.done, row.outcome) for row in rows}
    finally:
        engine.dispose()


async def deposited(env, stack) -> WorkflowHandle:
    """A training whose client filed on 3 Dec 2026 and deposited its own share."""
    handle = await start(env, stack, await dossier_from(env, "training-open-1p.xml"))
    await handle.signal(
        DossierWorkflow.record_application,
        ApplicationInput("KMO-2026-9", filed_on=date(2026, 12, 3)),
    )
    await handle.signal(
        DossierWorkflow.skip_step, SkipInput(Step.TERMS, "signed on paper", "Els")
    )
    await until(handle, lambda s: s.step == Step.PAYMENT)
    await handle.signal(DossierWorkflow.record_deposit, DepositInput())
    await until(handle, lambda s: "payment_order" in templates_sent(s))
    return handle


async def test_forgotten_payment_order_is_chased_until_staff_records_payment(
    worker, stack
):
    """30 days without payment order: 4 reminders, 3 calls; payment ends the chase."""
    env = worker
    handle = await deposited(env, stack)

    await env.sleep(timedelta(days=30))  # reminders on days 7, 14, 21 and 28
    status = await until(handle, lambda s: len(open_calls(s)) == 3)

    assert templates_sent(status).count("payment_order") == 5  # first + 4 reminders
    calls = open_calls(status)
    assert [call.step for call in calls] == [Step.PAYMENT] * 3
    assert [call.reason for call in calls] == [
        "call the client: the deadline is near",
        "call the client: 2 reminders without answer",
        "call the client: 4 reminders without answer",
    ]
    assert all(is_working_day(call.due) for call in calls)
    assert {d.name: d.due for d in status.deadlines}["final date"] == date(2027, 12, 31)

    await handle.signal(
        DossierWorkflow.log_call,
        CallInput("no_answer", by="Els", task_id=calls[0].task_id),
    )
    status = await until(handle, lambda s: len(open_calls(s)) == 2)
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    status = await until(handle, lambda s: s.step == Step.ATTENDANCE)

    assert open_calls(status) == []
    assert templates_sent(status).count("payment_order") == 5
    assert {d.name: d.met for d in status.deadlines if d.name != "last session"} == {
        "application": True,
        "final date": False,
        "deposit": True,
        "payment order": True,
    }
    assert [d.due for d in status.deadlines] == sorted(d.due for d in status.deadlines)
    await keep_history(handle, "training-payment-order-chase")
    records = recorded_tasks(stack)
    assert records[calls[0].task_id] == (True, "no_answer")
    assert records[calls[1].task_id] == (True, "no longer needed")
    assert records[calls[2].task_id] == (True, "no longer needed")


def recorded_next_deadline(stack, dossier_id: str) -> tuple[str, date | None]:
    """(step, next deadline) of the dossier's record, as lists and staff see it."""
    from adapters.records import Dossier, make_engine, make_session_factory

    engine = make_engine(stack.database_url)
    try:
        with make_session_factory(engine)() as session:
            row = session.get_one(Dossier, dossier_id)
            return row.step, row.next_deadline
    finally:
        engine.dispose()


async def test_the_records_next_deadline_follows_the_payment_step(worker, stack):
    """The record shows the deposit's due date, then the payment order's.

    Both deadlines are set once the payment step has begun; the mail of each
    carries them to the records, so the staff's overdue list sees them.
    """
    env = worker
    handle = await start(env, stack, await dossier_from(env, "training-open-1p.xml"))
    dossier_id = (await handle.query(DossierWorkflow.status)).dossier_id
    await handle.signal(
        DossierWorkflow.record_application,
        ApplicationInput("KMO-2026-9", filed_on=date(2026, 12, 3)),
    )
    await handle.signal(
        DossierWorkflow.skip_step, SkipInput(Step.TERMS, "signed on paper", "Els")
    )
    status = await until(handle, lambda s: "deposit" in templates_sent(s))
    deposit_due = {d.name: d.due for d in status.deadlines}["deposit"]

    assert deposit_due == date(2027, 1, 2)  # 30 days after the application
    assert recorded_next_deadline(stack, dossier_id) == ("payment", deposit_due)

    await handle.signal(DossierWorkflow.record_deposit, DepositInput())
    status = await until(handle, lambda s: "payment_order" in templates_sent(s))
    order_due = {d.name: d.due for d in status.deadlines}["payment order"]

    assert recorded_next_deadline(stack, dossier_id) == ("payment", order_due)
    assert [d.due for d in status.deadlines] == sorted(d.due for d in status.deadlines)
    await handle.terminate("test done")


async def test_company_size_from_the_details_signal_sets_the_expected_subsidy(
    worker, stack
):
    """An open training of EUR 395: 118.50 subsidy when small, 79.00 when medium."""
    env = worker
    handle = await start(env, stack, await dossier_from(env, "training-open-1p.xml"))

    before = await until(handle, lambda s: s.step != Step.ONBOARDING)
    await handle.signal(
        DossierWorkflow.update_details, DetailsInput(company_size="medium")
    )
    after = await until(handle, lambda s: s.company_size == "medium")

    assert (before.company_size, before.expected_subsidy) == (None, Decimal("118.50"))
    assert before.own_share == Decimal("276.50")
    assert (after.expected_subsidy, after.own_share) == (
        Decimal("79.00"),
        Decimal("316.00"),
    )


async def test_a_cancelled_dossier_leaves_no_call_open(worker, stack):
    """A late application opens a call; cancelling closes it, in the records too."""
    env = worker
    dossier = await dossier_from(env, "training-open-1p.xml")
    late = replace(
        dossier,
        start_date=dossier.start_date - timedelta(days=30),
        end_date=dossier.end_date - timedelta(days=30),
    )
    handle = await start(env, stack, late)
    status = await until(handle, lambda s: len(open_calls(s)) == 1)
    call = open_calls(status)[0]

    await handle.signal(DossierWorkflow.cancel, CancelInput("client stopped"))
    result = await handle.result()

    assert result.outcome == Step.CANCELLED
    status = await handle.query(DossierWorkflow.status)
    assert status.open_tasks == []
    assert recorded_tasks(stack)[call.task_id] == (True, "dossier cancelled")
