"""PDF invoices on the command line: their fields come with `--field key=value`.

`inspect` reads the PDF and its fields here. `upload` posts to the web app:
its request goes, in-process, to the real app on a SQLite database and a local
archive, with a stand-in for Temporal that keeps the workflows it is asked to
start.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from adapters.archive import LocalArchive
from starter import cli
from starter.cli import app
from web.app import create_app

runner = CliRunner()

PDF_INVOICE = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
FIELDS = {
    "number": "LS-PDF-1",
    "issue_date": "2026-11-20",
    "period_start": "2026-12-08",
    "period_end": "2026-12-08",
    "supplier_enterprise_number": "0412.345.614",
    "supplier_name": "Leerhuis Schelde BV",
    "customer_enterprise_number": "0511.223.355",
    "customer_name": "Bakkerij Peeters BV",
    "contact_name": "An Peeters",
    "contact_email": "an.peeters@bakkerij-peeters.example",
    "contact_phone": "+32 15 00 00 01",
    "dv_number": "DV.O214567",
    "participants": "1",
    "total_excl_vat": "395.00",
}
MISSING = ("number", "contact_email", "dv_number")


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    path = tmp_path / "factuur.pdf"
    path.write_bytes(PDF_INVOICE)
    return path


def field_options(fields: dict[str, str]) -> list[str]:
    return [part for k, v in fields.items() for part in ("--field", f"{k}={v}")]


def without(*keys: str) -> dict[str, str]:
    return {k: v for k, v in FIELDS.items() if k not in keys}


# --- inspect -------------------------------------------------------------------


def test_inspect_prices_a_pdf_with_its_fields(pdf: Path):
    """A PDF with all its fields is an open training of one participant: fee 75."""
    result = runner.invoke(app, ["inspect", str(pdf), "--json", *field_options(FIELDS)])

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["can_start"] is True
    assert answer["fee"]["total_excl_vat"] == "75.00"
    assert answer["problems"] == []


def test_inspect_human_output_of_a_pdf(pdf: Path):
    """Without --json the PDF's fields, fee and dossier id are printed."""
    result = runner.invoke(app, ["inspect", str(pdf), *field_options(FIELDS)])

    assert result.exit_code == 0, result.output
    assert "Invoice LS-PDF-1\n" in result.stdout
    assert "total excl. VAT                   75.00" in result.stdout
    assert "A dossier can start: 0412345614-ls-pdf-1" in result.stdout


def test_inspect_of_a_pdf_with_missing_fields_exits_1_listing_them(pdf: Path):
    """Number, client email and DV number left out: exit 1, each one named."""
    result = runner.invoke(
        app, ["inspect", str(pdf), *field_options(without(*MISSING))]
    )

    assert result.exit_code == 1, result.output
    for problem in ("number:", "customer_contact.email:", "dv_number:"):
        assert problem in result.stdout
    assert "No dossier can start until the errors above are fixed." in result.stdout


def test_inspect_of_a_pdf_without_fields_exits_1_listing_them(pdf: Path):
    """A bare PDF: exit 1 (fields missing, not an unreadable file), all listed."""
    result = runner.invoke(app, ["inspect", str(pdf), "--json"])

    assert result.exit_code == 1, result.output
    answer = json.loads(result.stdout)
    assert "factuur.pdf is a PDF invoice: give its fields" in answer["error"]
    assert [p["field"] for p in answer["problems"]] == [
        "number",
        "period_start",
        "supplier.enterprise_number",
        "customer.enterprise_number",
        "customer_contact.email",
        "total_excl_vat",
        "dv_number",
    ]


def test_inspect_rejects_a_field_without_equals_sign(pdf: Path):
    result = runner.invoke(app, ["inspect", str(pdf), "--field", "number"])

    assert result.exit_code == 2
    assert "'number' is not a field; write it as key=value" in result.stderr


# --- upload, to the real app ---------------------------------------------------


@dataclass
class RecordingTemporal:
    """Stands in for the Temporal client: keeps the workflows it starts."""

    started: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    async def start_workflow(self, workflow: Any, arg: Any, **options: Any) -> None:
        self.started.append((arg, options))


@pytest.fixture
def temporal() -> RecordingTemporal:
    return RecordingTemporal()


@pytest.fixture
def web_app(settings, session_factory, temporal, monkeypatch):
    """`dossier upload`'s HTTP calls answered in-process by the real app."""
    the_app = create_app(
        settings,
        temporal_client=temporal,
        session_factory=session_factory,
        archive=LocalArchive(settings.archive_dir),
    )

    def request(method: str, url: str, timeout: Any = None, **kwargs: Any):
        async def call() -> httpx.Response:
            async with the_app.router.lifespan_context(the_app):
                transport = httpx.ASGITransport(app=the_app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://testserver"
                ) as client:
                    return await client.request(method, url, **kwargs)

        return asyncio.run(call())

    monkeypatch.setattr(cli.httpx, "request", request)
    return the_app


def upload(pdf: Path, fields: dict[str, str], *options: str):
    """`dossier upload`; the app's log lines are kept apart from its output."""
    with capture_logs():
        return runner.invoke(
            app,
            [
                "upload",
                str(pdf),
                "--url",
                "http://testserver",
                *field_options(fields),
                *options,
            ],
        )


def test_upload_of_a_pdf_with_its_fields_starts_the_dossier(
    pdf: Path, web_app, temporal
):
    """--field values reach the app as field_<key>: a dossier with fee 75."""
    result = upload(pdf, FIELDS, "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["dossier_id"] == "0412345614-ls-pdf-1"
    assert answer["created"] is True
    assert answer["fee"]["total_excl_vat"] == "75.00"
    [(dossier, options)] = temporal.started
    assert options["id"] == "dossier-0412345614-ls-pdf-1"
    assert dossier.kind.value == "training"
    assert dossier.client.email == "an.peeters@bakkerij-peeters.example"


def test_upload_of_a_pdf_with_missing_fields_exits_1_listing_them(
    pdf: Path, web_app, temporal
):
    """The app's 422 is printed with each missing field; exit 1, nothing started."""
    result = upload(pdf, without(*MISSING))

    assert result.exit_code == 1, result.output
    assert "refused (422)" in result.stderr
    for problem in ("number:", "customer_contact.email:", "dv_number:"):
        assert problem in result.stderr
    assert temporal.started == []
