"""The `dossier` command: inspect and upload invoices, follow dossiers, run the stack.

`inspect` reads an invoice on this machine and touches nothing else. `upload`,
`status` and `list` talk to the running web app over HTTP, so they need no
database or Temporal connection of their own. `dev`, `worker` and `web` run
the service. `user`, `statement`, `export` and `listing` work on the database
of DOSSIER_DATABASE_URL directly.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import structlog
import typer

from adapters.settings import Settings

app = typer.Typer(
    help="Follow up KMO-portefeuille dossiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK = 0
EXIT_REFUSED = 1  # the invoice has errors, or the server refused the request
EXIT_UNUSABLE = 2  # the file cannot be read, or the server cannot be reached


class TemporalUnreachable(Exception):
    """The worker cannot connect to the Temporal server."""


DEFAULT_BASE_URL = Settings.model_fields["base_url"].default
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

Url = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="DOSSIER_BASE_URL",
        help="Address of the running web app.",
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Participants = Annotated[
    list[str],
    typer.Option(
        "--participant",
        "-p",
        help='A participant as "Name <email>"; repeat for each one.',
    ),
]


# --- inspect -------------------------------------------------------------


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="A UBL (XML) or PDF invoice.")],
    json_output: JsonOutput = False,
    participant: Participants = [],  # noqa: B006 - typer reads the default
    client_email: Annotated[
        str | None, typer.Option(help="The client's email.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="nl, fr or en.")] = None,
    field: Annotated[
        list[str],
        typer.Option(help="A PDF invoice field as key=value; repeatable."),
    ] = [],  # noqa: B006 - typer reads the default
) -> None:
    """Read, check and price an invoice; no dossier is started, nothing is stored.

    Exit 0 when a dossier could start, 1 when the invoice has errors (a PDF
    invoice: fields missing), 2 when the file cannot be read as an invoice.
    """
    from kmo.invoice import InvoiceRejected
    from starter.intake import IntakeError, prepare, prepared_to_json
    from web.forms import FormError, build_details, parse_field

    try:
        details = build_details(
            participants=participant,
            client_email=client_email,
            language=language,
            fields=dict(parse_field(text) for text in field),
        )
    except FormError as error:
        _fail(str(error), EXIT_UNUSABLE, json_output)
    data = _read_file(file, json_output)

    try:
        prepared = prepare(data, file.name, details)
    except IntakeError as error:
        code = EXIT_REFUSED if error.status_code == 422 else EXIT_UNUSABLE
        _fail(error.message, code, json_output, error.problems)
    except InvoiceRejected as error:
        _fail(str(error), EXIT_UNUSABLE, json_output)
    except Exception as error:  # a reader bug must still not print a traceback
        _fail(
            f"{file.name} could not be read because of an internal error "
            f"({type(error).__name__}: {error}); please report it",
            EXIT_UNUSABLE,
            json_output,
        )

    if json_output:
        _print_json(prepared_to_json(prepared))
    else:
        typer.echo(render_prepared(prepared))
    usable = prepared.dossier is not None or prepared.cancels is not None
    raise typer.Exit(EXIT_OK if usable else EXIT_REFUSED)


def render_prepared(prepared) -> str:
    """The human report of `inspect`: fields, problems, warnings, fee."""
    invoice = prepared.invoice
    noun = "Credit note" if invoice.document_type == "credit_note" else "Invoice"
    lines = [f"{noun} {invoice.number or '(no number)'}"]
    lines += _field_lines(invoice)
    lines += _problem_lines(prepared.problems)
    lines += _warning_lines(prepared.warnings)
    lines += _fee_lines(prepared.fee)
    if prepared.dossier is not None:
        lines.append(f"\nA dossier can start: {prepared.dossier.dossier_id}")
    elif prepared.cancels is not None:
        lines.append(
            f"\nA credit note: uploaded, it cancels the dossier of invoice "
            f"{invoice.billing_reference} ({prepared.cancels})"
        )
    elif invoice.document_type == "credit_note":
        lines.append("\nA credit note that cancels nothing until the errors are fixed.")
    else:
        lines.append("\nNo dossier can start until the errors above are fixed.")
    return "\n".join(lines)


def _field_lines(invoice) -> list[str]:
    contact = invoice.customer_contact
    fields = {
        "issued": invoice.issue_date,
        "kind": invoice.kind,
        "DV number": invoice.dv_number,
        "provider": _party(invoice.supplier),
        "client": _party(invoice.customer),
        "contact": ", ".join(
            str(v) for v in (contact.name, contact.email, contact.phone) if v
        ),
        "period": _period(invoice.period_start, invoice.period_end),
        "participants": _participants(invoice),
        "amount": _amount(invoice.total_excl_vat, invoice.currency),
    }
    return [f"  {name:<13} {value if value else '-'}" for name, value in fields.items()]


def _party(party) -> str:
    return ", ".join(str(v) for v in (party.name, party.enterprise_number) if v)


def _period(start, end) -> str:
    if start is None and end is None:
        return ""
    return f"{start or '?'} to {end or '?'}"


def _participants(invoice) -> str:
    if invoice.participant_count is None:
        return ""
    names = ", ".join(invoice.participant_names)
    return f"{invoice.participant_count}" + (f" ({names})" if names else "")


def _amount(amount, currency) -> str:
    return "" if amount is None else f"{amount} {currency or ''} excl. VAT".strip()


def _problem_lines(problems) -> list[str]:
    if not problems:
        return ["\nProblems: none"]
    return ["\nProblems:"] + [
        f"  [{p.severity}] {p.field}: {p.message} ({p.code})" for p in problems
    ]


def _warning_lines(warnings) -> list[str]:
    if not warnings:
        return ["\nWarnings: none"]
    return ["\nWarnings:"] + [
        f"  {w.message} ({w.code}; rule: {w.rule})" for w in warnings
    ]


def _fee_lines(fee) -> list[str]:
    if fee is None:
        return ["\nFee: cannot be computed"]
    lines = ["\nFee (EUR):"]
    lines += [
        f"  {line.label:<15} {line.quantity:>3} x {line.unit_price:>6.2f} = "
        f"{line.amount:>8.2f}"
        for line in fee.lines
    ]
    vat_label = f"VAT {(fee.vat_rate * 100).normalize():f} %"
    lines.append(f"  {'total excl. VAT':<30} {fee.total_excl_vat:>8.2f}")
    lines.append(f"  {vat_label:<30} {fee.vat:>8.2f}")
    lines.append(f"  {'total incl. VAT':<30} {fee.total_incl_vat:>8.2f}")
    return lines


# --- upload, status, list ------------------------------------------------


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(help="A UBL (XML) or PDF invoice.")],
    provider: Annotated[
        str | None,
        typer.Option(help="The provider's enterprise number, checked on the invoice."),
    ] = None,
    participant: Participants = [],  # noqa: B006 - typer reads the default
    client_email: Annotated[
        str | None, typer.Option(help="The client's email.")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="The client's phone.")] = None,
    contact_name: Annotated[
        str | None, typer.Option(help="The client's contact person.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="nl, fr or en.")] = None,
    has_account: Annotated[
        bool | None,
        typer.Option(
            "--has-account/--no-account",
            help="Whether the client has a KMO-portefeuille platform account.",
        ),
    ] = None,
    session: Annotated[
        list[str], typer.Option(help="A training day as YYYY-MM-DD; repeatable.")
    ] = [],  # noqa: B006 - typer reads the default
    field: Annotated[
        list[str],
        typer.Option(help="A PDF invoice field as key=value; repeatable."),
    ] = [],  # noqa: B006 - typer reads the default
    json_output: JsonOutput = False,
    url: Url = DEFAULT_BASE_URL,
) -> None:
    """Upload an invoice to the running web app; a dossier starts for it."""
    from web.forms import FIELD_PREFIX, FormError, build_details, parse_field

    try:
        fields = dict(parse_field(text) for text in field)
        build_details(  # the server's checks, before sending anything
            participants=participant,
            client_email=client_email,
            client_phone=phone,
            client_contact_name=contact_name,
            language=language,
            session_dates=session,
            fields=fields,
        )
    except FormError as error:
        _fail(str(error), EXIT_UNUSABLE, json_output)
    data = _read_file(file, json_output)

    form: dict[str, Any] = {
        "provider": provider,
        "participants": participant,
        "client_email": client_email,
        "client_phone": phone,
        "client_contact_name": contact_name,
        "language": language,
        "has_platform_account": None if has_account is None else str(has_account),
        "session_dates": session,
        **{FIELD_PREFIX + key: value for key, value in fields.items()},
    }
    form = {key: value for key, value in form.items() if value not in (None, [])}
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    files = {"invoice": (file.name, data, content_type)}

    response = _request(
        "POST", url, "/api/dossiers", json_output, data=form, files=files
    )
    answer = response.json()
    if json_output:
        _print_json(answer)
    else:
        typer.echo(render_upload(answer))


def render_upload(answer: dict[str, Any]) -> str:
    codes = [w.get("code") for w in answer.get("warnings") or []]
    if answer["created"]:
        state = "started"
    elif "invoice_changed" in codes:
        state = "already known, but this file differs from the first upload"
    else:
        state = "already known (same invoice)"
    fee = answer.get("fee")
    lines = [
        f"Dossier {answer['dossier_id']} {state}",
        f"  workflow     {answer['workflow_id']}",
        f"  fee          {_fee_summary(fee)}",
    ]
    warnings = answer.get("warnings") or []
    lines.append(f"  warnings     {len(warnings) or 'none'}")
    lines += [f"    - {w['message']} ({w['code']})" for w in warnings]
    lines.append(f"  status       {answer['links']['status']}")
    lines.append(f"  Temporal UI  {answer['links']['temporal_ui']}")
    return "\n".join(lines)


def _fee_summary(fee: dict[str, Any] | None) -> str:
    if not fee:
        return "-"
    return f"EUR {fee['total_excl_vat']} excl. VAT (EUR {fee['total_incl_vat']} incl.)"


# A dossier id as intake makes them: provider digits, then the invoice's slug.
_DOSSIER_ID = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")


@app.command()
def status(
    dossier_id: Annotated[str, typer.Argument(help="The dossier's id.")],
    json_output: JsonOutput = False,
    url: Url = DEFAULT_BASE_URL,
) -> None:
    """Where one dossier stands: step, deadlines, open tasks, timeline."""
    if not _DOSSIER_ID.fullmatch(dossier_id):
        _fail(
            f"'{dossier_id}' is not a dossier id; give one like "
            "0412345614-ls-2026-0141, as `dossier list` shows them",
            EXIT_UNUSABLE,
            json_output,
        )
    answer = _request("GET", url, f"/api/dossiers/{dossier_id}", json_output).json()
    if json_output:
        _print_json(answer)
    else:
        typer.echo(render_status(answer))


def render_status(answer: dict[str, Any]) -> str:
    record = answer.get("record") or {}
    status = answer.get("status") or {}
    lines = [
        f"Dossier {answer['dossier_id']}",
        f"  step         {status.get('step') or record.get('step') or '-'}",
        f"  kind         {status.get('kind') or record.get('kind') or '-'}",
        f"  client       {(record.get('client') or {}).get('name') or '-'}",
        f"  mails sent   {status.get('mails_sent', '-')}",
    ]
    if answer.get("status_error"):
        lines.append(f"  (live status unavailable: {answer['status_error']})")
    lines += _list_section("deadlines", status.get("deadlines"), _deadline)
    lines += _list_section("open tasks", status.get("open_tasks"), _task)
    lines += _list_section("timeline", status.get("timeline"), _timeline)
    lines.append(f"  Temporal UI  {answer['links']['temporal_ui']}")
    return "\n".join(lines)


def _list_section(title: str, items, render) -> list[str]:
    if not items:
        return []
    return [f"  {title}:"] + [f"    {render(item)}" for item in items]


def _deadline(item: dict[str, Any]) -> str:
    return f"{item['due']}  {item['name']}{'  (met)' if item.get('met') else ''}"


def _task(item: dict[str, Any]) -> str:
    return f"{item['due']}  {item['kind']}: {item['reason']}"


def _timeline(item: dict[str, Any]) -> str:
    detail = f"  {item['detail']}" if item.get("detail") else ""
    return f"{item['at'][:19]}  {item['event']}{detail}"


@app.command("list")
def list_dossiers(json_output: JsonOutput = False, url: Url = DEFAULT_BASE_URL) -> None:
    """Every dossier the records know, newest first."""
    answer = _request("GET", url, "/api/dossiers", json_output).json()
    if json_output:
        _print_json(answer)
        return
    rows = answer["dossiers"]
    if not rows:
        typer.echo("No dossiers yet.")
        return
    typer.echo(f"{'dossier':<32} {'step':<13} {'kind':<9} {'next deadline':<14} fee")
    for row in rows:
        typer.echo(
            f"{row['dossier_id']:<32} {row['step']:<13} {row['kind']:<9} "
            f"{row['next_deadline'] or '-':<14} {row['fee']['total_excl_vat'] or '-'}"
        )


@app.command()
def ready(
    wait: Annotated[
        float, typer.Option(help="Seconds to keep trying before giving up.")
    ] = 0.0,
    url: Url = DEFAULT_BASE_URL,
) -> None:
    """Check that the web app, its database and Temporal answer (GET /readyz)."""
    deadline = time.monotonic() + wait
    while True:
        problem = _readiness_problem(url)
        if problem is None:
            typer.echo(f"ready: {url}")
            return
        if time.monotonic() >= deadline:
            _fail(problem, EXIT_REFUSED)
        time.sleep(1.0)


def _readiness_problem(url: str) -> str | None:
    try:
        response = httpx.get(f"{url}/readyz", timeout=HTTP_TIMEOUT)
    except httpx.TransportError:
        return f"the web app at {url} does not answer; is `dossier dev` running?"
    if response.status_code != 200:
        return f"not ready: {response.text}"
    return None


def _request(
    method: str, url: str, path: str, json_output: bool, **kwargs: Any
) -> httpx.Response:
    """Call the web app; on failure print its message and exit."""
    try:
        response = httpx.request(method, f"{url}{path}", timeout=HTTP_TIMEOUT, **kwargs)
    except httpx.TransportError:
        _fail(
            f"cannot reach the web app at {url}; is `dossier dev` running?",
            EXIT_UNUSABLE,
            json_output,
        )
    if response.is_success:
        return response
    _fail_with_answer(response, json_output)


def _fail_with_answer(response: httpx.Response, json_output: bool):
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": response.text.strip() or response.reason_phrase}
    if json_output:
        _print_json(answer)
        raise typer.Exit(EXIT_REFUSED)
    typer.echo(f"refused ({response.status_code}): {answer.get('error')}", err=True)
    for problem in answer.get("problems") or []:
        typer.echo(f"  {problem['field']}: {problem['message']}", err=True)
    raise typer.Exit(EXIT_REFUSED)


# --- evidence ------------------------------------------------------------


@app.command()
def export(
    dossier_id: Annotated[str, typer.Argument(help="The dossier's id.")],
    out: Annotated[Path, typer.Option("--out", help="The zip file to write.")],
) -> None:
    """Write a dossier's archived documents and mails with their manifest to a zip.

    Every item is checked against its SHA-256; exit 1 (and no zip) when one
    fails or the dossier has nothing archived.
    """
    from adapters.archive import ArchiveError
    from adapters.evidence import EvidenceError, export_dossier
    from adapters.s3archive import make_archive

    settings = _settings()
    try:
        with _records(settings) as session:
            manifest = export_dossier(session, make_archive(settings), dossier_id, out)
    except (EvidenceError, ArchiveError) as error:
        _fail(str(error), EXIT_REFUSED)
    count = len(manifest["items"])
    typer.echo(
        f"{out}: {count} item{'' if count == 1 else 's'}, "
        f"manifest sha256 {manifest['sha256']}"
    )


@app.command()
def listing(
    provider_id: Annotated[str, typer.Argument(help="The provider's id.")],
    since: Annotated[
        datetime,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day, YYYY-MM-DD."),
    ],
    until: Annotated[
        datetime,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day, YYYY-MM-DD."),
    ],
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """List what was archived in a provider's container from one day to another."""
    from adapters.evidence import EvidenceError, container_listing, listing_csv

    try:
        with _records(_settings()) as session:
            rows = container_listing(session, provider_id, since.date(), until.date())
    except EvidenceError as error:
        _fail(str(error), EXIT_UNUSABLE)
    if csv_output:
        typer.echo(listing_csv(rows), nl=False)
        return
    if not rows:
        typer.echo("Nothing archived in that period.")
    for row in rows:
        typer.echo(
            f"{row['created_at']}  {row['dossier_id']}  {row['name']}  "
            f"{row['size']} bytes  kept until {row['retain_until']}"
        )


def _settings() -> Settings:
    from adapters.settings import get_settings

    return get_settings()


@contextmanager
def _records(settings: Settings) -> Iterator[Any]:
    """A session on the records database, closed (and its engine) afterwards."""
    from adapters.records import make_engine, make_session_factory

    _require_database(settings)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _require_database(settings: Settings, *, create: bool = False) -> None:
    """Refuse to work on a SQLite file that is not there (a command run from
    another folder would otherwise make a new, empty database and say nothing).

    With `create` the new database is made, and the command says so.
    """
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    if Path(url.database).exists():
        return
    if create:
        typer.echo(f"dossier: a new database is made at {url.database}", err=True)
    else:
        _fail(
            f"there is no database at {url.database}; run this in the project "
            "folder after `make run`, or set DOSSIER_DATA_DIR or "
            "DOSSIER_DATABASE_URL",
            EXIT_UNUSABLE,
        )


# --- fee statement -------------------------------------------------------


@app.command()
def statement(
    provider_id: Annotated[
        str, typer.Argument(help="The provider's enterprise number.")
    ],
    month: Annotated[str, typer.Option(help="The month, as YYYY-MM.")],
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Also write the statement as CSV.")
    ] = None,
    pdf_file: Annotated[
        Path | None, typer.Option("--pdf", help="Also write the statement as PDF.")
    ] = None,
) -> None:
    """Our fee for each dossier a provider sent in one month, with VAT and totals.

    A dossier counts in the month it was created (its invoice received);
    cancelled dossiers owe nothing and are left out.
    """
    from adapters.records import make_engine, make_session_factory
    from kmo import enterprise
    from starter.statement import (
        StatementError,
        build_statement,
        parse_month,
        statement_csv,
        statement_pdf,
        statement_text,
    )

    engine = make_engine(Settings().database_url)
    try:
        with make_session_factory(engine)() as session:
            made = build_statement(
                session, enterprise.digits(provider_id), parse_month(month)
            )
    except StatementError as error:
        _fail(str(error), EXIT_REFUSED)
    finally:
        engine.dispose()
    for target in (csv_file, pdf_file):  # refuse before anything is written
        if target is not None and not target.parent.is_dir():
            _fail(f"cannot write {target}: there is no folder {target.parent}", 1)
    typer.echo(statement_text(made))
    if csv_file is not None:
        _write_file(csv_file, statement_csv(made).encode("utf-8"))
        typer.echo(f"CSV written to {csv_file}")
    if pdf_file is not None:
        _write_file(pdf_file, statement_pdf(made))
        typer.echo(f"PDF written to {pdf_file}")


# --- portal accounts -----------------------------------------------------

user_app = typer.Typer(
    help="Portal accounts: add, list and disable them.", no_args_is_help=True
)
app.add_typer(user_app, name="user")

PASSWORD_ENV = "DOSSIER_USER_PASSWORD"  # noqa: S105 - the variable's name


class AccountRole(StrEnum):
    PROVIDER = "provider"
    STAFF = "staff"


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
    role: Annotated[
        AccountRole,
        typer.Option(help="provider (sees its own provider's dossiers) or staff."),
    ],
    provider: Annotated[
        str | None,
        typer.Option(help="A provider account's enterprise number."),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help=f"Read the password from the first line of stdin (scripts); "
            f"else from ${PASSWORD_ENV}, else a hidden prompt asked twice.",
        ),
    ] = False,
) -> None:
    """Add a portal account; the password is never a command-line argument."""
    from kmo import enterprise
    from web.auth import AccountError, create_user

    password = _new_password(password_stdin)
    provider_id = enterprise.digits(provider) if provider is not None else None
    try:
        with _migrated_records(Settings(), write=True, create=True) as session:
            user = create_user(session, email, password, role.value, provider_id)
            email, provider_id = user.email, user.provider_id
    except AccountError as error:
        _fail(str(error), EXIT_REFUSED)
    owner = f" of provider {provider_id}" if provider_id else ""
    typer.echo(f"added {role.value} account {email}{owner}")


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_app.command("list")
def user_list(json_output: JsonOutput = False) -> None:
    """Every portal account: e-mail, role, provider, created, enabled or not."""
    from web.auth import list_users

    with _migrated_records(Settings()) as session:
        rows = [
            {
                "email": user.email,
                "role": user.role,
                "provider_id": user.provider_id,
                "created_at": user.created_at.isoformat(timespec="seconds"),
                "disabled": user.disabled,
            }
            for user in list_users(session)
        ]
    if json_output:
        _print_json({"users": rows})
        return
    if not rows:
        typer.echo("No accounts yet; add one with `dossier user add`.")
        return
    typer.echo(f"{'e-mail':<40} {'role':<9} {'provider':<11} {'created':<20} state")
    for row in rows:
        typer.echo(
            f"{row['email']:<40} {row['role']:<9} {row['provider_id'] or '-':<11} "
            f"{row['created_at'][:19]:<20} "
            f"{'disabled' if row['disabled'] else 'enabled'}"
        )


@user_app.command("disable")
def user_disable(
    email: Annotated[str, typer.Argument(help="The account's e-mail address.")],
) -> None:
    """Disable an account and end its sessions; it can no longer log in."""
    from web.auth import AccountError, disable_user, normalise_email

    try:
        with _migrated_records(Settings(), write=True) as session:
            changed = disable_user(session, email)
    except AccountError as error:
        _fail(str(error), EXIT_REFUSED)
    state = "disabled" if changed else "was already disabled"
    typer.echo(f"{normalise_email(email)} {state}; its sessions are ended")


@contextmanager
def _migrated_records(
    settings: Settings, *, write: bool = False, create: bool = False
) -> Iterator[Any]:
    """`_records` after the migrations, committed at the end when `write`;
    a missing SQLite database is made only with `create`."""
    from adapters.records import upgrade_database

    _require_database(settings, create=create)
    upgrade_database(settings.database_url)
    with _records(settings) as session:
        if not write:
            yield session
            return
        with session.begin():
            yield session


# --- running the service -------------------------------------------------


@app.command()
def dev() -> None:
    """Run Temporal's dev server, the worker and the web app until Ctrl-C."""
    from adapters.settings import get_settings
    from starter.dev import run_dev

    raise typer.Exit(run_dev(get_settings()))


@app.command()
def worker() -> None:
    """Run the worker alone (registers the workflow and activities).

    With DOSSIER_METRICS_BIND set it serves the SDK's metrics for Prometheus.
    """
    from adapters.logging import configure_logging
    from adapters.settings import get_settings
    from worker import serve_metrics

    settings = get_settings()
    configure_logging(json=settings.log_json)
    serve_metrics(settings)
    try:
        asyncio.run(_run_worker_until_signal(settings))
    except TemporalUnreachable as error:
        _fail(str(error), EXIT_UNUSABLE)


async def _run_worker_until_signal(settings) -> None:
    """Poll until SIGINT or SIGTERM, then let running tasks finish and stop."""
    from starter.client import connect
    from worker import build_worker

    try:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
    except RuntimeError as error:  # the SDK's bridge reports refusals this way
        raise TemporalUnreachable(
            f"cannot reach Temporal at {settings.temporal_address}; "
            "is `dossier dev` or the Temporal server running?"
        ) from error
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for each in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(each, stop.set)
    async with build_worker(client, settings):
        structlog.get_logger().info("worker.started", task_queue=settings.task_queue)
        await stop.wait()
    structlog.get_logger().info("worker.stopped")


@app.command()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Proxies whose X-Forwarded-For names the client (comma-separated, "
            "or '*' when only the proxy can reach the app); rate limits then "
            "count per client, not per proxy.",
        ),
    ] = "127.0.0.1",
) -> None:
    """Run the web app alone (uvicorn)."""
    import uvicorn

    from adapters.logging import configure_logging
    from adapters.settings import get_settings

    configure_logging(json=get_settings().log_json)
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )


@app.command()
def smtp(
    port: Annotated[
        int | None, typer.Option(help="Loopback port (default DOSSIER_SMTP_PORT).")
    ] = None,
) -> None:
    """Receive mail for the containers on 127.0.0.1 (SMTP) until Ctrl-C."""
    from adapters.logging import configure_logging
    from adapters.settings import get_settings
    from starter.smtp import run_smtp

    settings = get_settings()
    configure_logging(json=settings.log_json)
    asyncio.run(run_smtp(settings, port or settings.smtp_port))


# --- helpers -------------------------------------------------------------


def _write_file(file: Path, data: bytes) -> None:
    try:
        file.write_bytes(data)
    except OSError as error:
        _fail(f"cannot write {file}: {error.strerror}", 1)


def _read_file(file: Path, json_output: bool) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        _fail(f"cannot read {file}: {error.strerror}", EXIT_UNUSABLE, json_output)


def _fail(message: str, code: int, json_output: bool = False, problems=()):
    """Print what went wrong (JSON on stdout with --json) and exit with `code`."""
    if json_output:
        from web.errors import error_body

        _print_json(error_body(message, problems))
    else:
        typer.echo(f"dossier: {message}", err=True)
        for problem in problems:
            typer.echo(f"  {problem.field}: {problem.message}", err=True)
    raise typer.Exit(code)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    app()
