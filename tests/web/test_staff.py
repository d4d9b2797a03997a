"""Staff pages: the day's overview, one dossier, logging a call, who gets in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from adapters.archive import LocalArchive
from adapters.records import Dossier, Task, TimelineEvent, save_dossier
from kmo.models import Kind
from starter.client import workflow_id
from tests.factories import advice_dossier, training_dossier
from tests.hostile import SQL_DROP, SQL_OR, UNICODE, VERBATIM, tables_intact
from web import staff
from web.app import create_app
from workflows.messages import (
    AbsenceInput,
    AttendanceLine,
    CallInput,
    Deadline,
    DossierStatus,
    Step,
)
from workflows.messages import Task as OpenTask

SATURDAY = date(2026, 12, 5)
TRAINING_ID = "0412345614-ls-2026-0141"
ADVICE_ID = "0712345036-cva-26-031-e38a00"


class FakeHandle:
    def __init__(self, temporal: FakeTemporal, workflow: str) -> None:
        self._temporal = temporal
        self._workflow = workflow

    async def signal(self, name: str, arg: Any) -> None:
        self._temporal.signals.append((self._workflow, name, arg))

    async def query(self, name: str, **kwargs: Any) -> DossierStatus:
        return self._temporal.status


class FakeTemporal:
    """Stands in for the Temporal client: keeps signals, answers one status."""

    def __init__(self) -> None:
        self.signals: list[tuple[str, str, Any]] = []
        self.status = DossierStatus(
            dossier_id=TRAINING_ID,
            kind=Kind.TRAINING,
            step=Step.PAYMENT,
            deadlines=[Deadline("final date", date(2027, 12, 31))],
            open_tasks=[
                OpenTask(
                    f"{TRAINING_ID}-1",
                    "call",
                    Step.PAYMENT,
                    date(2026, 12, 7),
                    "call the client: 2 reminders without answer",
                )
            ],
            warnings=[],
            timeline=[],
        )

    def get_workflow_handle(self, workflow: str) -> FakeHandle:
        return FakeHandle(self, workflow)


@pytest.fixture
def records(session_factory):
    """Two running dossiers and three call tasks, as on Saturday 5 Dec 2026."""
    with session_factory.begin() as session:
        training = save_dossier(
            session, training_dossier(), workflow_id(training_dossier().dossier_id)
        )
        training.step, training.next_deadline = "payment", date(2026, 12, 1)
        training.warnings = [
            {"code": "excluded_topic", "message": "mentions 'NLP'", "rule": "r"}
        ]
        advice = save_dossier(
            session, advice_dossier(), workflow_id(advice_dossier().dossier_id)
        )
        advice.step, advice.next_deadline = "terms", date(2026, 12, 20)
        now = datetime(2026, 12, 4, 9, tzinfo=UTC)
        for number, due, done in ((1, 7, False), (2, 8, False), (3, 4, True)):
            session.add(
                Task(
                    task_id=f"{TRAINING_ID}-{number}",
                    dossier_id=TRAINING_ID,
                    kind="call",
                    step="payment",
                    due=date(2026, 12, due),
                    reason=f"call the client: call {number}",
                    done=done,
                    created_at=now,
                    updated_at=now,
                )
            )
    return session_factory


@pytest.fixture
def temporal() -> FakeTemporal:
    return FakeTemporal()


@pytest.fixture
async def app(settings, records, temporal, monkeypatch):
    monkeypatch.setattr(staff, "today", lambda: SATURDAY)
    monkeypatch.delenv(staff.STAFF_TOKEN_ENV, raising=False)
    app = create_app(
        settings,
        temporal_client=temporal,
        session_factory=records,
        archive=LocalArchive(settings.archive_dir),
    )
    async with app.router.lifespan_context(app):
        yield app


def browser(app, client_host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def pages(app) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        yield client


def section(html: str, table_id: str) -> str:
    start = html.index(f'<table id="{table_id}">')
    return html[start : html.index("</table>", start)]


async def test_overview_counts_running_dossiers_by_step(pages):
    """One dossier at the payment follow-up and one at the terms."""
    html = (await pages.get("/staff")).text

    steps = section(html, "steps")
    assert "<tr><td>terms</td><td>1</td></tr>" in steps
    assert "<tr><td>payment</td><td>1</td></tr>" in steps
    assert steps.index("terms") < steps.index("payment")  # the procedure's order


async def test_overview_lists_overdue_dossiers_only(pages):
    """The training's deadline of 1 Dec is overdue on 5 Dec; 20 Dec is not."""
    overdue = section((await pages.get("/staff")).text, "overdue")

    assert TRAINING_ID in overdue
    assert "2026-12-01" in overdue
    assert ADVICE_ID not in overdue


async def test_saturdays_calls_are_those_due_by_monday(pages):
    """On Saturday the page lists Monday's open call, not Tuesday's nor a done one."""
    calls = section((await pages.get("/staff")).text, "calls")

    assert "call the client: call 1" in calls
    assert "2026-12-07" in calls
    assert "call the client: call 2" not in calls
    assert "call the client: call 3" not in calls


async def test_rows_link_to_the_temporal_ui_and_the_dossier_page(pages):
    """Each row links to its workflow in the Temporal UI and to its staff page."""
    html = (await pages.get("/staff")).text

    assert (
        'href="http://localhost:8233/namespaces/default/workflows/'
        f'{workflow_id(TRAINING_ID)}"'
    ) in html
    assert f'href="http://testserver/staff/dossiers/{ADVICE_ID}"' in html


async def test_overview_shows_each_dossiers_warnings(pages):
    """The warning stored at intake appears with its dossier."""
    warnings = section((await pages.get("/staff")).text, "warnings")

    assert TRAINING_ID in warnings
    assert "mentions &#39;NLP&#39;" in warnings


async def test_dossier_page_shows_the_live_status_and_a_call_form(pages):
    """The status query's deadlines and open call appear, with a form to log it."""
    html = (await pages.get(f"/staff/dossiers/{TRAINING_ID}")).text

    assert "<td>final date</td><td>2027-12-31</td><td>no</td>" in html
    assert f'name="task_id" value="{TRAINING_ID}-1"' in html
    assert 'name="csrf" value="' in html


async def csrf_of(pages, dossier_id: str) -> str:
    html = (await pages.get(f"/staff/dossiers/{dossier_id}")).text
    start = html.index('name="csrf" value="') + len('name="csrf" value="')
    return html[start : html.index('"', start)]


async def test_logging_a_call_signals_the_workflow_and_closes_the_task(
    pages, temporal, records
):
    """The form sends log_call with the outcome and marks the task done."""
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/calls",
        data={
            "csrf": token,
            "task_id": f"{TRAINING_ID}-1",
            "outcome": "voicemail",
            "note": "left a message",
            "by": "Els",
        },
    )

    assert response.status_code == 303
    assert temporal.signals == [
        (
            "dossier-0412345614-ls-2026-0141",
            "log_call",
            CallInput("voicemail", "left a message", "Els", f"{TRAINING_ID}-1"),
        )
    ]
    with records() as session:
        task = session.get(Task, f"{TRAINING_ID}-1")
        assert (task.done, task.outcome) == (True, "voicemail")


async def test_a_call_form_without_a_valid_token_is_refused(pages, temporal):
    """A post with a forged token, or another dossier's, sends nothing."""
    other = await csrf_of(pages, ADVICE_ID)

    forged = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/calls",
        data={"csrf": "forged", "outcome": "reached"},
    )
    borrowed = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/calls",
        data={"csrf": other, "outcome": "reached"},
    )

    assert (forged.status_code, borrowed.status_code) == (403, 403)
    assert temporal.signals == []


async def test_an_unknown_outcome_is_refused(pages, temporal):
    """Only the listed outcomes can be logged."""
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/calls",
        data={"csrf": token, "outcome": "<script>"},
    )

    assert response.status_code == 422
    assert temporal.signals == []


async def test_other_machines_are_refused_without_the_staff_token(app, monkeypatch):
    """A remote client gets 403; with the right token header it gets the page."""
    monkeypatch.setenv(staff.STAFF_TOKEN_ENV, "s3cret-staff-token")
    async with browser(app, "203.0.113.7") as remote:
        refused = await remote.get("/staff")
        wrong = await remote.get("/staff", headers={staff.STAFF_TOKEN_HEADER: "x"})
        allowed = await remote.get(
            "/staff", headers={staff.STAFF_TOKEN_HEADER: "s3cret-staff-token"}
        )

    assert (refused.status_code, wrong.status_code, allowed.status_code) == (
        403,
        403,
        200,
    )


async def test_a_request_forwarded_by_a_local_proxy_is_not_local(pages):
    """Loopback through a proxy (X-Forwarded-For) does not count as this machine."""
    response = await pages.get("/staff", headers={"X-Forwarded-For": "203.0.113.7"})

    assert response.status_code == 403


async def test_dossier_page_says_when_the_workflow_does_not_answer(
    pages, temporal, monkeypatch
):
    """Without a live status the page still shows the record, with the reason."""

    async def no_answer(self, name: str, **kwargs: Any) -> DossierStatus:
        raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(FakeHandle, "query", no_answer)

    response = await pages.get(f"/staff/dossiers/{TRAINING_ID}")

    assert response.status_code == 200
    assert "the workflow did not answer; is a worker running?" in response.text
    assert "Bakkerij Peeters BV" in response.text


def at_attendance(temporal: FakeTemporal) -> None:
    """The training waits for its attendance list: An signed, Bart did not."""
    temporal.status.step = Step.ATTENDANCE
    temporal.status.attendance = [
        AttendanceLine("An Peeters", date(2026, 12, 1), "signed"),
        AttendanceLine("Bart Claes", date(2026, 12, 1), "open"),
    ]


async def test_marking_an_absence_signals_the_workflow_and_keeps_it_on_record(
    pages, temporal, records
):
    """The open line has a form; it sends mark_absent and notes the timeline."""
    at_attendance(temporal)
    html = (await pages.get(f"/staff/dossiers/{TRAINING_ID}")).text
    table = section(html, "attendance")
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/absences",
        data={
            "csrf": token,
            "participant": "Bart Claes",
            "day": "2026-12-01",
            "reason": "ill",
            "by": "Els",
        },
    )

    assert table.count("Mark absent") == 1
    assert 'name="participant" value="Bart Claes"' in table
    assert response.status_code == 303
    assert temporal.signals == [
        (
            "dossier-0412345614-ls-2026-0141",
            "mark_absent",
            AbsenceInput("Bart Claes", date(2026, 12, 1), "ill", "Els"),
        )
    ]
    with records() as session:
        [line] = session.scalars(
            select(TimelineEvent).where(TimelineEvent.event == "attendance.absent")
        ).all()
    assert (line.dossier_id, line.detail) == (
        TRAINING_ID,
        "Bart Claes on 2026-12-01 by Els: ill",
    )


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"csrf": "forged", "participant": "Bart Claes"}, 403),
        ({"participant": "", "day": "2026-12-01"}, 422),
        ({"participant": "Bart Claes", "day": "1 december"}, 422),
        ({"participant": "x" * 201}, 422),
        ({"participant": "Nobody Known"}, 422),
        ({"participant": "Bart Claes", "day": "2026-12-05"}, 422),
    ],
    ids=[
        "forged token",
        "no participant",
        "not a date",
        "name too long",
        "not a participant",
        "not a training day",
    ],
)
async def test_an_absence_form_that_does_not_hold_is_refused(
    pages, temporal, records, form, status
):
    """Nothing is signalled or recorded for a refused absence."""
    at_attendance(temporal)
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/absences", data={"csrf": token, **form}
    )

    assert response.status_code == status
    assert temporal.signals == []
    with records() as session:
        assert session.scalars(select(TimelineEvent)).all() == []


STAFF_EMAIL = "els@kmo-dossier.example"
PROVIDER_EMAIL = "jan@leerhuis-schelde.example"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def accounts(records, monkeypatch):
    """A staff account and a provider's account, with cheap Argon2id costs."""
    from argon2 import PasswordHasher

    from web import auth

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth, "PASSWORD_HASHER", cheap)
    with records.begin() as session:
        auth.create_user(session, STAFF_EMAIL, PASSWORD, "staff")
        auth.create_user(session, PROVIDER_EMAIL, PASSWORD, "provider", "0412345614")
    return records


async def signed_in(client: httpx.AsyncClient, email: str) -> httpx.Response:
    """Log in through the portal's form, as a browser does."""
    page = await client.get("/portal/login", params={"next": "/staff"})
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    return await client.post(
        "/portal/login",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/staff",
        },
    )


async def test_staff_signed_in_to_the_portal_reach_the_staff_pages(app, accounts):
    """From another machine, a staff login opens /staff; a provider's does not."""
    async with browser(app, "203.0.113.9") as staff_browser:
        before = await staff_browser.get("/staff")
        login = await signed_in(staff_browser, STAFF_EMAIL)
        after = await staff_browser.get("/staff")
        page = await staff_browser.get(f"/staff/dossiers/{TRAINING_ID}")
    async with browser(app, "203.0.113.10") as provider_browser:
        await signed_in(provider_browser, PROVIDER_EMAIL)
        provider = await provider_browser.get("/staff")

    assert before.status_code == 403
    assert (login.status_code, login.headers["location"]) == (303, "/staff")
    assert "path=/;" in login.headers["set-cookie"].lower()
    assert after.status_code == 200
    assert page.status_code == 200
    assert provider.status_code == 403


# --- hostile text in the call form ---------------------------------------


@pytest.mark.parametrize("text", VERBATIM, ids=["drop-table", "or-1-1", "unicode"])
async def test_sql_and_unicode_in_a_call_note_are_sent_verbatim(
    pages, temporal, records, text
):
    """Note and name reach log_call as typed; the task closes; tables intact."""
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/calls",
        data={
            "csrf": token,
            "task_id": f"{TRAINING_ID}-2",
            "outcome": "reached",
            "note": text,
            "by": text,
        },
    )

    assert response.status_code == 303
    [(_, name, call)] = temporal.signals
    assert name == "log_call"
    assert (call.note, call.by, call.outcome) == (text, text, "reached")
    assert tables_intact(records.kw["bind"])
    with records() as session:
        assert session.get(Task, f"{TRAINING_ID}-2").outcome == "reached"
        assert session.scalar(select(func.count()).select_from(Task)) == 3
        assert session.scalar(select(func.count()).select_from(Dossier)) == 2


@pytest.mark.parametrize("outcome", [SQL_DROP, SQL_OR, UNICODE, "reached\x00"])
async def test_a_hostile_call_outcome_is_refused_with_422(
    pages, temporal, records, outcome
):
    """Outcomes are a fixed list: anything else is 422, nothing sent or stored."""
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/calls",
        data={"csrf": token, "task_id": f"{TRAINING_ID}-1", "outcome": outcome},
    )

    assert response.status_code == 422
    assert "outcome must be one of reached, no_answer" in response.text
    assert temporal.signals == []
    with records() as session:
        task = session.get(Task, f"{TRAINING_ID}-1")
        assert (task.done, task.outcome) == (False, None)
    assert tables_intact(records.kw["bind"])


async def test_a_hostile_task_id_changes_no_task(pages, temporal, records):
    """A task id like an injection finds no task: the records stay as they were."""
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/calls",
        data={"csrf": token, "task_id": "x' OR '1'='1", "outcome": "reached"},
    )

    assert response.status_code == 303
    with records() as session:
        done = {t.task_id: t.done for t in session.scalars(select(Task))}
    assert done == {
        f"{TRAINING_ID}-1": False,
        f"{TRAINING_ID}-2": False,
        f"{TRAINING_ID}-3": True,
    }
    assert tables_intact(records.kw["bind"])


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("calls", {"outcome": "reached", "by": "Els\x00"}),
        ("calls", {"outcome": "reached", "note": "line one\r\nBcc: x@y.example"}),
        ("absences", {"participant": "Bart Claes", "reason": "ill\x00"}),
        ("absences", {"participant": "Bart\nClaes"}),
    ],
    ids=["call by NUL", "call note CRLF", "absence reason NUL", "absence name LF"],
)
async def test_staff_forms_refuse_control_characters(
    pages, temporal, records, path, form
):
    """NUL or a line break in a staff form is a 422; nothing is sent or stored."""
    at_attendance(temporal)
    token = await csrf_of(pages, TRAINING_ID)

    response = await pages.post(
        f"/staff/dossiers/{TRAINING_ID}/{path}", data={"csrf": token, **form}
    )

    assert response.status_code == 422
    assert "control character" in response.text
    assert temporal.signals == []
    with records() as session:
        assert session.scalars(select(TimelineEvent)).all() == []


async def test_the_same_absence_posted_twice_is_one_line(pages, temporal, records):
    """A double click signals twice (the workflow keeps one) and records once."""
    at_attendance(temporal)
    token = await csrf_of(pages, TRAINING_ID)
    form = {"csrf": token, "participant": "Bart Claes", "day": "2026-12-01"}

    for _ in range(2):
        response = await pages.post(
            f"/staff/dossiers/{TRAINING_ID}/absences", data=form
        )
        assert response.status_code == 303

    with records() as session:
        lines = session.scalars(
            select(TimelineEvent).where(TimelineEvent.event == "attendance.absent")
        ).all()
    assert len(lines) == 1


async def test_a_browser_refused_gets_an_html_page_and_an_api_client_json(app):
    """403 on /staff: an HTML page for a browser, JSON for anything else."""
    async with browser(app, "203.0.113.9") as outside:
        page = await outside.get("/staff", headers={"accept": "text/html,*/*;q=0.8"})
        data = await outside.get("/staff", headers={"accept": "application/json"})

    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Forbidden</h1>" in page.text
    assert "the staff pages answer staff signed in at /portal/login" in page.text
    assert data.status_code == 403
    assert data.json()["error"].startswith("the staff pages answer")
