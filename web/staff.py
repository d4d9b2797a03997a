"""Staff pages: the day's follow-up across dossiers, one dossier, call outcomes.

`/staff` reads the records: live dossiers by step, overdue ones (next deadline
before today), today's calls (open call tasks due on or before the next
Belgian working day, so Friday's page shows no weekend and Monday's work is
visible on Saturday) and the intake warnings. `/staff/dossiers/{id}` adds the
workflow's live status and a form per open call that sends `log_call`.

Access goes through `require_staff`. Until the portal's staff sign-in takes
over, it lets in requests from this machine (a loopback client that did not
come through a proxy) and requests carrying the `X-Dossier-Staff-Token`
header equal to the DOSSIER_STAFF_TOKEN environment variable; all others get
403. Forms carry a signed token (itsdangerous, the link secret) bound to the
dossier, so another site cannot post a call outcome through a staff browser.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from adapters.records import Dossier, Task, TimelineEvent, add_timeline_once
from kmo.calendar import local_date, next_working_day
from starter.client import workflow_id
from web.auth import Role, find_session
from web.forms import FormError, check_text
from web.portal import SESSION_COOKIE
from workflows.messages import AbsenceInput, CallInput, DossierStatus, Step

log = structlog.get_logger()

STAFF_TOKEN_HEADER = "X-Dossier-Staff-Token"  # noqa: S105 - a header's name
STAFF_TOKEN_ENV = "DOSSIER_STAFF_TOKEN"  # noqa: S105 - a variable's name
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
CALL_OUTCOMES = ("reached", "no_answer", "voicemail", "wrong_number", "other")
CSRF_SALT = "staff-call"
CSRF_MAX_AGE = timedelta(hours=12)
QUERY_TIMEOUT = timedelta(seconds=5)
STEP_ORDER = [step.value for step in Step]


def require_staff(request: Request) -> None:
    """Let in staff signed in to the portal, this machine, or the staff token.

    Anyone else, a provider's user included, gets 403.
    """
    if is_staff_request(request) or _staff_signed_in(request):
        return
    raise HTTPException(
        403,
        "the staff pages answer staff signed in at /portal/login, this machine, "
        f"or the staff token in the {STAFF_TOKEN_HEADER} header",
    )


def _staff_signed_in(request: Request) -> bool:
    """Whether the request carries the portal session of a staff account."""
    token = request.cookies.get(SESSION_COOKIE)
    services = getattr(request.app.state, "services", None)
    if not token or services is None:
        return False
    with services.session_factory() as session:
        found = find_session(session, token)
    return found is not None and found[0].role == Role.STAFF


def is_staff_request(request: Request) -> bool:
    """Whether the request holds the staff token or comes from this machine."""
    expected = os.environ.get(STAFF_TOKEN_ENV, "")
    given = request.headers.get(STAFF_TOKEN_HEADER, "")
    if expected and hmac.compare_digest(given.encode(), expected.encode()):
        return True
    return _from_this_machine(request)


def _from_this_machine(request: Request) -> bool:
    if any(name in request.headers for name in FORWARDED_HEADERS):
        return False  # a proxy on this machine forwards someone else
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


router = APIRouter(
    prefix="/staff", tags=["staff"], dependencies=[Depends(require_staff)]
)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def today() -> date:
    """Today in Belgium; tests replace it."""
    return local_date(datetime.now(UTC))


# --- what the pages show -----------------------------------------------


@dataclass
class DossierRow:
    dossier_id: str
    workflow_id: str
    kind: str
    client_name: str
    step: str
    next_deadline: date | None
    warnings: list[dict[str, str]]
    temporal_url: str


@dataclass
class CallRow:
    task_id: str
    dossier_id: str
    client_name: str
    step: str
    due: date
    reason: str


@dataclass
class Overview:
    today: date
    call_day: date
    steps: list[tuple[str, int]]
    overdue: list[DossierRow]
    calls: list[CallRow]
    warned: list[DossierRow]
    dossiers: list[DossierRow] = field(default_factory=list)


def temporal_url(settings: Any, workflow: str) -> str:
    return (
        f"{settings.temporal_ui_url}/namespaces/"
        f"{settings.temporal_namespace}/workflows/{workflow}"
    )


def overview(session_factory: Any, settings: Any, day: date) -> Overview:
    """The staff's day from the records: live dossiers, overdue ones, calls."""
    call_day = next_working_day(day)
    with session_factory() as session:
        live = session.scalars(
            select(Dossier)
            .where(Dossier.closed_at.is_(None))
            .order_by(Dossier.next_deadline, Dossier.dossier_id)
        ).all()
        calls = session.execute(
            select(Task, Dossier.client_name)
            .join(Dossier, Dossier.dossier_id == Task.dossier_id)
            .where(Dossier.closed_at.is_(None))
            .where(Task.kind == "call", Task.done.is_(False), Task.due <= call_day)
            .order_by(Task.due, Task.task_id)
        ).all()
    rows = [_row(dossier, settings) for dossier in live]
    counts = Counter(row.step for row in rows)
    return Overview(
        today=day,
        call_day=call_day,
        steps=sorted(counts.items(), key=lambda item: _step_index(item[0])),
        overdue=[r for r in rows if r.next_deadline and r.next_deadline < day],
        calls=[
            CallRow(t.task_id, t.dossier_id, name, t.step, t.due, t.reason)
            for t, name in calls
        ],
        warned=[row for row in rows if row.warnings],
        dossiers=rows,
    )


def _row(dossier: Dossier, settings: Any) -> DossierRow:
    return DossierRow(
        dossier_id=dossier.dossier_id,
        workflow_id=dossier.workflow_id,
        kind=dossier.kind,
        client_name=dossier.client_name,
        step=dossier.step,
        next_deadline=dossier.next_deadline,
        warnings=list(dossier.warnings or []),
        temporal_url=temporal_url(settings, dossier.workflow_id),
    )


def _step_index(step: str) -> int:
    return STEP_ORDER.index(step) if step in STEP_ORDER else len(STEP_ORDER)


def find_row(session_factory: Any, settings: Any, dossier_id: str) -> DossierRow:
    with session_factory() as session:
        dossier = session.get(Dossier, dossier_id)
        if dossier is None:
            raise HTTPException(404, f"there is no dossier '{dossier_id}'")
        return _row(dossier, settings)


def record_call(session_factory: Any, task_id: str, outcome: str) -> None:
    """Close the call task in the records at once; the workflow confirms it."""
    with session_factory.begin() as session:
        task = session.get(Task, task_id)
        if task is not None:
            task.done = True
            task.outcome = outcome
            task.updated_at = datetime.now(UTC)


# --- CSRF ----------------------------------------------------------------


def _serializer(request: Request) -> URLSafeTimedSerializer:
    secret = request.app.state.settings.link_secret.get_secret_value()
    return URLSafeTimedSerializer(secret, salt=CSRF_SALT)


def csrf_token(request: Request, dossier_id: str) -> str:
    return _serializer(request).dumps(dossier_id)


def check_csrf(request: Request, dossier_id: str, token: str) -> None:
    max_age = int(CSRF_MAX_AGE.total_seconds())
    try:
        signed_for = _serializer(request).loads(token, max_age=max_age)
    except BadSignature as error:
        raise HTTPException(
            403, "the form has expired or did not come from this page; reload it"
        ) from error
    if signed_for != dossier_id:
        raise HTTPException(403, "the form belongs to another dossier; reload it")


# --- routes --------------------------------------------------------------


@router.get("", response_class=HTMLResponse, name="staff_overview")
async def overview_page(request: Request) -> Response:
    """Dossiers by step, overdue deadlines, today's calls and the warnings."""
    services = request.app.state.services
    settings = request.app.state.settings
    data = await run_in_threadpool(
        overview, services.session_factory, settings, today()
    )
    return templates.TemplateResponse(request, "staff/overview.html", {"o": data})


@router.get("/dossiers/{dossier_id}", response_class=HTMLResponse, name="staff_dossier")
async def dossier_page(request: Request, dossier_id: str) -> Response:
    """One dossier: the records' row, the workflow's status, the call form."""
    services = request.app.state.services
    settings = request.app.state.settings
    row = await run_in_threadpool(
        find_row, services.session_factory, settings, dossier_id
    )
    status, status_error = await _status(services.client, dossier_id)
    return templates.TemplateResponse(
        request,
        "staff/dossier.html",
        {
            "row": row,
            "status": status,
            "status_error": status_error,
            "outcomes": CALL_OUTCOMES,
            "csrf": csrf_token(request, dossier_id),
        },
    )


@router.post("/dossiers/{dossier_id}/calls", name="staff_log_call")
async def log_call(request: Request, dossier_id: str) -> Response:
    """Send the call's outcome to the dossier (`log_call`) and close its task."""
    form = await request.form()
    check_csrf(request, dossier_id, str(form.get("csrf", "")))
    outcome = str(form.get("outcome", ""))
    if outcome not in CALL_OUTCOMES:
        raise HTTPException(422, f"outcome must be one of {', '.join(CALL_OUTCOMES)}")
    task_id = str(form.get("task_id", "")) or None
    _check_texts(form, ("note", "by", "task_id"))
    call = CallInput(
        outcome=outcome,
        note=str(form.get("note", ""))[:1000],
        by=str(form.get("by", "") or "staff")[:100],
        task_id=task_id,
    )

    services = request.app.state.services
    handle = services.client.get_workflow_handle(workflow_id(dossier_id))
    await handle.signal("log_call", call)
    if task_id:
        await run_in_threadpool(record_call, services.session_factory, task_id, outcome)
    log.info("call.logged", dossier_id=dossier_id, task_id=task_id, outcome=outcome)
    return RedirectResponse(
        request.url_for("staff_dossier", dossier_id=dossier_id), status_code=303
    )


@router.post("/dossiers/{dossier_id}/absences", name="staff_mark_absent")
async def mark_absent(request: Request, dossier_id: str) -> Response:
    """Mark a participant absent on a training day (`mark_absent`), on record."""
    form = await request.form()
    check_csrf(request, dossier_id, str(form.get("csrf", "")))
    _check_texts(form, ("participant", "day", "reason", "by"))
    participant = str(form.get("participant", "")).strip()
    if not participant or len(participant) > 200:
        raise HTTPException(422, "name the participant (at most 200 characters)")
    day_text = str(form.get("day", "")).strip()
    try:
        day = date.fromisoformat(day_text) if day_text else None
    except ValueError:
        raise HTTPException(422, "the day must be a date like 2026-12-04") from None
    absence = AbsenceInput(
        participant=participant,
        day=day,
        reason=str(form.get("reason", ""))[:500],
        by=str(form.get("by", "") or "staff")[:100],
    )

    services = request.app.state.services
    status, status_error = await _status(services.client, dossier_id)
    if status is None:
        raise HTTPException(503, status_error)
    lines = {(line.participant, line.day) for line in status.attendance}
    if not any(name == participant for name, _ in lines):
        raise HTTPException(422, f"'{participant}' is no participant of this dossier")
    if day is not None and (participant, day) not in lines:
        raise HTTPException(
            422, f"{day.isoformat()} is no training day of this dossier"
        )
    handle = services.client.get_workflow_handle(workflow_id(dossier_id))
    await handle.signal("mark_absent", absence)
    await run_in_threadpool(
        record_absence, services.session_factory, dossier_id, absence
    )
    log.info("attendance.absent_marked", dossier_id=dossier_id)
    return RedirectResponse(
        request.url_for("staff_dossier", dossier_id=dossier_id), status_code=303
    )


def _check_texts(form: Any, names: tuple[str, ...]) -> None:
    """422 for a form field with a control character (NUL, a line break...)."""
    for name in names:
        try:
            check_text(str(form.get(name, "")), name, f"the {name.replace('_', ' ')}")
        except FormError as error:
            raise HTTPException(422, error.problems[0].message) from None


def record_absence(
    session_factory: Any, dossier_id: str, absence: AbsenceInput
) -> None:
    """The absence on the dossier's timeline in the records, for the auditor."""
    day = absence.day.isoformat() if absence.day else "every day"
    detail = f"{absence.participant} on {day} by {absence.by}: {absence.reason}"
    # The same absence posted twice (a double click) is one line.
    digest = hashlib.sha256(f"{dossier_id}\n{detail}".encode()).hexdigest()
    add_timeline_once(
        session_factory,
        TimelineEvent(
            dossier_id=dossier_id,
            at=datetime.now(UTC),
            event="attendance.absent",
            detail=detail,
            step="attendance",
            source=f"staff/absence/{digest}",
        ),
    )


async def _status(client: Any, dossier_id: str) -> tuple[DossierStatus | None, str]:
    handle = client.get_workflow_handle(workflow_id(dossier_id))
    try:
        status = await handle.query(
            "status", result_type=DossierStatus, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError:
        log.warning("staff.status_unavailable", dossier_id=dossier_id)
        return None, "the workflow did not answer; is a worker running?"
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError):
        log.warning("staff.status_failed", dossier_id=dossier_id)
        return None, "the workflow could not give its status; see the Temporal UI"
    return status, ""
