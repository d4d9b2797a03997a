"""DossierWorkflow on the time-skipping test server, with the real activities.

The activities write to a SQLite file, a local archive and an outbox folder in
a temporary directory: only Temporal's clock is not the wall clock.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from kmo.calendar import local_date
from starter.client import DATA_CONVERTER
from starter.intake import UploadDetails, prepare
from worker import build_activities, build_worker
from workflows.dossier import DossierWorkflow
from workflows.messages import (
    AbsenceInput,
    ApplicationInput,
    CancelInput,
    DepositInput,
    DetailsInput,
    Document,
    DossierInput,
    DossierStatus,
    FinalReportInput,
    Participant,
    PaymentInput,
    SignatureInput,
    SkipInput,
    Step,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "invoices"
HISTORIES = Path(__file__).parent / "histories"


async def keep_history(handle: WorkflowHandle, name: str) -> None:
    """With RECORD_HISTORIES=1, store the finished history for the replay test.

    A history already kept is left alone: it was recorded on older code (before
    a patch, say), which is what the replay test must go on proving.
    """
    path = HISTORIES / f"{name}.json"
    if os.environ.get("RECORD_HISTORIES") != "1" or path.exists():
        return
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    path.write_text(history.to_json())


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """Settings pointing every embedded backend into a temporary folder."""
    from adapters.records import upgrade_database
    from adapters.settings import Settings

    settings = Settings(data_dir=tmp_path, task_queue=f"tq-{uuid.uuid4()}")
    upgrade_database(settings.database_url)
    return settings


WRITTEN_ON = date(2026, 12, 3)  # the fixtures' dates are relative to this day


async def dossier_from(
    env: WorkflowEnvironment, fixture: str, **details
) -> DossierInput:
    """The fixture's dossier, its dates moved so that today is as when written.

    The time-skipping server's clock is shared by all tests and only moves on.
    """
    data = (FIXTURES / fixture).read_bytes()
    prepared = prepare(data, fixture, UploadDetails(**details), today=WRITTEN_ON)
    assert prepared.dossier is not None, prepared.problems
    dossier = prepared.dossier
    shift = local_date(await env.get_current_time()) - WRITTEN_ON
    return replace(
        dossier,
        invoice_date=dossier.invoice_date + shift,
        start_date=dossier.start_date + shift,
        end_date=dossier.end_date + shift,
    )


async def start(env: WorkflowEnvironment, stack, dossier: DossierInput):
    handle = await env.client.start_workflow(
        DossierWorkflow.run,
        dossier,
        id=f"dossier-{dossier.dossier_id}-{uuid.uuid4().hex[:6]}",
        task_queue=stack.task_queue,
    )
    return handle


async def until(
    handle: WorkflowHandle, check: Callable[[DossierStatus], bool], env=None
) -> DossierStatus:
    """Poll the status query until `check` holds (up to 60 real seconds)."""
    for _ in range(1200):
        status = await handle.query(DossierWorkflow.status)
        if check(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached; last status: {status}")


def at_step(step: Step) -> Callable[[DossierStatus], bool]:
    return lambda status: status.step == step


def outbox_subjects(stack) -> list[str]:
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(
            Path(stack.outbox_dir).glob("*.eml"), key=lambda p: p.stat().st_mtime_ns
        )
    ]
    return [str(m["Subject"]) for m in mails]


def templates_sent(status: DossierStatus) -> list[str]:
    return [e.detail.split(" #")[0] for e in status.timeline if e.event == "mail.sent"]


@pytest.fixture
async def worker(stack):
    """A fresh time-skipping server per test: its clock is the test's alone.

    Workflows a test leaves waiting would otherwise hold the shared clock of
    the next test's time skip.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(
            Path(sys.executable).parent / "temporal-test-server"
        ),
        data_converter=DATA_CONVERTER,
    )
    async with env, build_worker(env.client, stack):
        yield env


async def test_training_runs_every_step_and_closes_with_its_fee(worker, stack):
    """An open training goes from onboarding to certificate and closes at 75."""
    env = worker
    dossier = await dossier_from(
        env,
        "training-open-1p.xml",
        participants=[Participant("An Peeters", "an@bakkerij-peeters.example")],
    )
    handle = await start(env, stack, dossier)

    await until(handle, at_step(Step.APPLICATION))
    await handle.signal(DossierWorkflow.record_application, ApplicationInput("KMO-123"))
    await until(handle, at_step(Step.TERMS))
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.TERMS, "An Peeters")
    )
    await until(handle, at_step(Step.PAYMENT))
    await handle.signal(DossierWorkflow.record_deposit, DepositInput())
    await until(handle, lambda s: "payment_order" in templates_sent(s))
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    await until(handle, at_step(Step.ATTENDANCE))
    await env.sleep(timedelta(days=7))  # the training day passes
    await until(handle, lambda s: "attendance" in templates_sent(s))
    await handle.signal(
        DossierWorkflow.record_signature,
        SignatureInput(Document.ATTENDANCE, "An Peeters", participant="An Peeters"),
    )
    await until(handle, at_step(Step.SATISFACTION))
    await handle.signal(
        DossierWorkflow.record_signature,
        SignatureInput(Document.SATISFACTION, "An Peeters"),
    )
    result = await handle.result()

    assert result.outcome == Step.CLOSED
    assert str(result.fee.total_excl_vat) == "75.00"
    await keep_history(handle, "training-open-1p-publish-on-wait")
    status = await handle.query(DossierWorkflow.status)
    assert templates_sent(status) == [
        "onboarding",
        "application",
        "terms",
        "deposit",
        "payment_order",
        "attendance",
        "satisfaction",
        "certificate",
    ]
    assert len(outbox_subjects(stack)) == 8


async def test_attendance_is_complete_with_signatures_and_absences(worker, stack):
    """Two participants, two days: An signs both, Bart is marked absent both.

    An absence for one day leaves the other day open; a name that is no
    participant is ignored; the status shows each line's state.
    """
    env = worker
    dossier = await dossier_from(
        env,
        "training-open-1p.xml",
        has_platform_account=True,
        participants=[
            Participant("An Peeters", "an@bakkerij-peeters.example"),
            Participant("Bart Claes"),
        ],
    )
    day_one, day_two = dossier.start_date, dossier.start_date + timedelta(days=1)
    dossier = replace(dossier, session_dates=[day_one, day_two])
    handle = await start(env, stack, dossier)
    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-7"))
    await handle.signal(
        DossierWorkflow.skip_step, SkipInput(Step.TERMS, "signed on paper", "Els")
    )
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    await until(handle, at_step(Step.ATTENDANCE))
    await env.sleep(timedelta(days=10))  # both training days pass
    await until(handle, lambda s: "attendance" in templates_sent(s))

    for day in (day_one, day_two):
        await handle.signal(
            DossierWorkflow.record_signature,
            SignatureInput(
                Document.ATTENDANCE, "An", participant="An Peeters", day=day
            ),
        )
    await handle.signal(
        DossierWorkflow.mark_absent, AbsenceInput("Bart Claes", day_one, "ill", "Els")
    )
    await handle.signal(DossierWorkflow.mark_absent, AbsenceInput("Nobody Known"))
    status = await until(
        handle, lambda s: any(e.event == "absence.ignored" for e in s.timeline)
    )

    assert status.step == Step.ATTENDANCE
    assert [(line.participant, line.day, line.state) for line in status.attendance] == [
        ("An Peeters", day_one, "signed"),
        ("An Peeters", day_two, "signed"),
        ("Bart Claes", day_one, "absent"),
        ("Bart Claes", day_two, "open"),
    ]
    await handle.signal(
        DossierWorkflow.mark_absent,
        AbsenceInput("Bart Claes", reason="left the company", by="Els"),
    )
    status = await until(handle, at_step(Step.SATISFACTION))

    assert [line.state for line in status.attendance] == [
        "signed",
        "signed",
        "absent",
        "absent",
    ]
    absences = [e.detail for e in status.timeline if e.event == "attendance.absent"]
    assert absences == [
        f"Bart Claes on {day_one.isoformat()} by Els: ill",
        "Bart Claes on every day by Els: left the company",
    ]
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.SATISFACTION, "An")
    )
    await handle.result()
    status = await handle.query(DossierWorkflow.status)

    assert templates_sent(status).count("certificate") == 1  # An's only
    assert [e.detail for e in status.timeline if e.event == "certificate.not_made"] == [
        "Bart Claes: absent"
    ]


async def test_an_absence_on_a_day_without_training_is_ignored(worker, stack):
    """A day that is no session day changes nothing on the list."""
    env = worker
    dossier = await dossier_from(
        env,
        "training-open-1p.xml",
        has_platform_account=True,
        participants=[Participant("Bart Claes")],
    )
    dossier = replace(dossier, session_dates=[dossier.start_date])
    handle = await start(env, stack, dossier)
    await handle.signal(
        DossierWorkflow.mark_absent,
        AbsenceInput("Bart Claes", dossier.start_date + timedelta(days=3), "ill"),
    )
    status = await until(
        handle, lambda s: any(e.event == "absence.ignored" for e in s.timeline)
    )

    assert [line.state for line in status.attendance] == ["open"]
    await handle.terminate("test done")


async def test_advice_waits_for_the_final_report_and_skips_attendance(worker, stack):
    """An advice has no attendance list and closes once the report is mailed."""
    env = worker
    dossier = await dossier_from(env, "advice-cyber-6m.xml", has_platform_account=True)
    handle = await start(env, stack, dossier)

    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-1"))
    await until(handle, at_step(Step.TERMS))
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.TERMS, "Sofie")
    )
    await until(handle, at_step(Step.PAYMENT))
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    await until(handle, at_step(Step.SATISFACTION))
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.SATISFACTION, "S")
    )
    await until(handle, at_step(Step.FINAL_REPORT))
    report = build_activities(stack)._archive.put(  # the provider's upload
        dossier.provider.provider_id,
        dossier.dossier_id,
        "eindrapport.pdf",
        b"%PDF-1.4 final report",
        retain_until=date(2036, 6, 1),
        content_type="application/pdf",
    )
    await handle.signal(
        DossierWorkflow.upload_final_report, FinalReportInput(report.key)
    )
    result = await handle.result()

    assert result.outcome == Step.CLOSED
    assert str(result.fee.total_excl_vat) == "225.00"
    # advice-cyber-6m.json is this test's history from before both patches
    await keep_history(handle, "advice-cyber-6m-publish-on-wait")
    status = await handle.query(DossierWorkflow.status)
    assert templates_sent(status) == [
        "application",
        "terms",
        "deposit",
        "satisfaction",
        "final_report_request",
        "final_report",
    ]
    assert any(e.event == "step.not_needed" for e in status.timeline)


async def test_client_that_never_files_gets_reminders_a_call_and_lapses(worker, stack):
    """Without an application the client is reminded, called, then lapsed."""
    env = worker
    dossier = await dossier_from(env, "training-open-1p.xml")
    handle = await start(env, stack, dossier)
    await until(handle, at_step(Step.APPLICATION))

    await env.sleep(timedelta(days=16))  # deadline 22 Dec; a call before it
    status = await until(handle, lambda s: len(s.open_tasks) >= 1)

    call = status.open_tasks[0]
    assert call.kind == "call"
    assert "call the client" in call.reason
    deadline = {d.name: d.due for d in status.deadlines}["application"]
    assert deadline == dossier.start_date + timedelta(days=14)
    assert call.due < deadline  # a call after the deadline would come too late
    assert templates_sent(status).count("application") >= 2
    result = await handle.result()
    assert result.outcome == Step.LAPSED
    status = await handle.query(DossierWorkflow.status)
    assert templates_sent(status)[-1] == "lapsed"


async def test_each_terms_reminder_carries_a_freshly_made_link(worker, stack):
    """A reminder makes its signing links again, so it never mails a dead link."""
    env = worker
    dossier = await dossier_from(env, "training-open-1p.xml")
    handle = await start(env, stack, dossier)
    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-9"))
    await until(handle, at_step(Step.TERMS))

    await env.sleep(timedelta(days=12))  # reminders every 5 days
    status = await until(handle, lambda s: templates_sent(s).count("terms") >= 3)
    await handle.terminate("test done")
    await keep_history(handle, "training-terms-fresh-links")

    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in (await handle.fetch_history()).events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    terms_mails = templates_sent(status).count("terms")
    assert scheduled.count("create_sign_links") == terms_mails
    followed_by = [
        scheduled[index + 1]
        for index, name in enumerate(scheduled)
        if name == "create_sign_links"
    ]
    assert followed_by == ["send_mail"] * terms_mails


async def test_skipped_step_is_passed_with_its_reason(worker, stack):
    """Staff can skip the terms; the dossier goes on to the payment follow-up."""
    env = worker
    dossier = await dossier_from(env, "training-open-1p.xml")
    handle = await start(env, stack, dossier)

    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-2"))
    await handle.signal(
        DossierWorkflow.skip_step, SkipInput(Step.TERMS, "signed on paper", "Els")
    )
    status = await until(handle, at_step(Step.PAYMENT))

    skipped = [e.detail for e in status.timeline if e.event == "step.skipped"]
    assert skipped == ["terms by Els: signed on paper"]
    assert "terms" not in templates_sent(status)


async def test_cancel_stops_the_dossier_and_tells_the_client(worker, stack):
    """A cancellation ends the dossier as cancelled, with no fee."""
    env = worker
    dossier = await dossier_from(env, "training-open-1p.xml")
    handle = await start(env, stack, dossier)
    await until(handle, at_step(Step.APPLICATION))

    await handle.signal(
        DossierWorkflow.cancel,
        CancelInput("client stopped", credit_note_number="CN-1"),
    )
    result = await handle.result()

    assert result.outcome == Step.CANCELLED
    assert result.fee is None
    status = await handle.query(DossierWorkflow.status)
    assert templates_sent(status)[-1] == "cancelled"


async def test_missing_client_email_opens_a_task_until_staff_adds_it(worker, stack):
    """Without a client email the mail waits for staff instead of failing."""
    env = worker
    dossier = await dossier_from(env, "training-open-1p.xml")
    dossier.client.email = None
    handle = await start(env, stack, dossier)

    status = await until(handle, lambda s: len(s.open_tasks) == 1)
    assert status.open_tasks[0].kind == "review"
    await handle.signal(
        DossierWorkflow.update_details, DetailsInput(client_email="an@example.be")
    )
    status = await until(handle, at_step(Step.APPLICATION))

    assert templates_sent(status)[:1] == ["onboarding"]
    assert status.open_tasks == []


async def test_a_year_long_training_runs_to_the_end_in_seconds(worker, stack):
    """Twelve months of in-company training pass on the skipped clock."""
    env = worker
    dossier = await dossier_from(
        env, "training-incompany-10p-12m.xml", has_platform_account=True
    )
    handle = await start(env, stack, dossier)

    await handle.signal(DossierWorkflow.record_application, ApplicationInput("P-3"))
    await handle.signal(
        DossierWorkflow.skip_step, SkipInput(Step.TERMS, "test", "staff")
    )
    await until(handle, at_step(Step.PAYMENT))
    await handle.signal(DossierWorkflow.record_payment, PaymentInput())
    await until(handle, at_step(Step.ATTENDANCE))
    await env.sleep(timedelta(days=380))
    await until(handle, lambda s: "attendance" in templates_sent(s))
    await handle.signal(
        DossierWorkflow.record_signature, SignatureInput(Document.ATTENDANCE, "Koen")
    )
    await until(handle, at_step(Step.SATISFACTION))
    await handle.signal(
        DossierWorkflow.skip_step, SkipInput(Step.SATISFACTION, "test", "staff")
    )
    status = await until(
        handle, lambda s: s.step == Step.CERTIFICATE and bool(s.open_tasks)
    )
    assert status.open_tasks[-1].reason.startswith("participant names are missing")
    await handle.signal(
        DossierWorkflow.update_details,
        DetailsInput(participants=[Participant("Koen Verhaegen")]),
    )
    result = await handle.result()

    assert result.outcome == Step.CLOSED
    assert str(result.fee.total_excl_vat) == "600.00"
