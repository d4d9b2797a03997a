"""The monthly fee statement per provider: rows, VAT, totals, CSV, PDF, command."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import escape
from typer.testing import CliRunner

from adapters.records import Dossier, save_dossier
from starter.cli import app
from starter.intake import UploadDetails, prepare
from starter.statement import (
    StatementError,
    build_statement,
    parse_month,
    statement_csv,
    statement_html,
    statement_pdf,
)
from tests.hostile import SCRIPT, SQL_DROP, TEMPLATE

FIXTURES = Path(__file__).parent / "fixtures" / "invoices"
LEERHUIS = "0412345614"  # Leerhuis Schelde BV: the two training fixtures
CYBERVEILIG = "0712345036"  # Cyberveilig Advies CommV: the advice fixture
DECEMBER = date(2026, 12, 1)


def fixture_dossier(name: str):
    prepared = prepare(
        (FIXTURES / name).read_bytes(), name, UploadDetails(), today=date(2026, 12, 3)
    )
    assert prepared.dossier is not None, prepared.problems
    return prepared.dossier


def record(session_factory, dossier, created_at: datetime, outcome=None) -> None:
    with session_factory.begin() as session:
        row = save_dossier(session, dossier, f"dossier-{dossier.dossier_id}")
        row.created_at = created_at
        row.outcome = outcome


@pytest.fixture
def three_under_leerhuis(session_factory):
    """The three fixtures in December 2026, the advice moved under Leerhuis."""
    training = fixture_dossier("training-open-1p.xml")
    advice = fixture_dossier("advice-cyber-6m.xml")
    advice = replace(advice, provider=training.provider)
    record(session_factory, training, datetime(2026, 12, 1, 8, tzinfo=UTC))
    record(
        session_factory,
        fixture_dossier("training-incompany-10p-12m.xml"),
        datetime(2026, 12, 2, 8, tzinfo=UTC),
    )
    record(session_factory, advice, datetime(2026, 12, 3, 8, tzinfo=UTC))
    return session_factory


@pytest.fixture
def as_invoiced(session_factory):
    """The three fixtures under their own providers, with dossiers around them."""
    record(
        session_factory,
        fixture_dossier("training-open-1p.xml"),
        datetime(2026, 12, 1, 8, tzinfo=UTC),
    )
    record(
        session_factory,
        fixture_dossier("training-incompany-10p-12m.xml"),
        datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # 1 Jan 2027 in Brussels
    )
    record(
        session_factory,
        fixture_dossier("advice-cyber-6m.xml"),
        datetime(2026, 11, 30, 23, 30, tzinfo=UTC),  # 1 Dec 2026 in Brussels
    )
    cancelled = replace(
        fixture_dossier("training-open-1p.xml"),
        dossier_id=f"{LEERHUIS}-ls-2026-0199",
        invoice_number="LS-2026-0199",
    )
    record(
        session_factory,
        cancelled,
        datetime(2026, 12, 10, 8, tzinfo=UTC),
        outcome="cancelled",
    )
    return session_factory


def statement_of(session_factory, provider_id: str, month: date = DECEMBER):
    with session_factory() as session:
        return build_statement(session, provider_id, month)


def test_three_fixture_dossiers_under_one_provider(three_under_leerhuis):
    """Fees 75, 600, 225; VAT 15.75, 126.00, 47.25; totals 900, 189, 1089."""
    statement = statement_of(three_under_leerhuis, LEERHUIS)

    assert [
        (row.fee_excl_vat, row.vat, row.fee_incl_vat) for row in statement.rows
    ] == [
        (Decimal("75.00"), Decimal("15.75"), Decimal("90.75")),
        (Decimal("600.00"), Decimal("126.00"), Decimal("726.00")),
        (Decimal("225.00"), Decimal("47.25"), Decimal("272.25")),
    ]
    assert (
        statement.total_excl_vat,
        statement.total_vat,
        statement.total_incl_vat,
    ) == (Decimal("900.00"), Decimal("189.00"), Decimal("1089.00"))


def test_each_provider_sees_only_its_own_dossiers_of_the_belgian_month(as_invoiced):
    """Leerhuis: the open training only (the welding course is January's, the
    cancelled one owes nothing); Cyberveilig: the advice of 1 December."""
    leerhuis = statement_of(as_invoiced, LEERHUIS)
    cyberveilig = statement_of(as_invoiced, CYBERVEILIG)
    january = statement_of(as_invoiced, LEERHUIS, date(2027, 1, 1))

    assert [row.invoice_number for row in leerhuis.rows] == ["LS-2026-0141"]
    assert leerhuis.total_incl_vat == Decimal("90.75")
    assert [row.invoice_number for row in cyberveilig.rows] == ["CVA/26/031"]
    assert cyberveilig.rows[0].created_on == date(2026, 12, 1)
    assert (cyberveilig.total_excl_vat, cyberveilig.total_vat) == (
        Decimal("225.00"),
        Decimal("47.25"),
    )
    assert [row.invoice_number for row in january.rows] == ["LS-2026-0157"]


def test_csv_has_a_row_per_dossier_and_a_total_row(three_under_leerhuis):
    """Amounts with a decimal point, the total row last."""
    lines = statement_csv(statement_of(three_under_leerhuis, LEERHUIS)).splitlines()

    assert lines[0] == (
        "dossier,invoice,client,kind,created,fee_excl_vat,vat,fee_incl_vat"
    )
    assert lines[1] == (
        "0412345614-ls-2026-0141,LS-2026-0141,Bakkerij Peeters BV,training,"
        "2026-12-01,75.00,15.75,90.75"
    )
    assert lines[-1] == "total,,,,,900.00,189.00,1089.00"
    assert len(lines) == 5


def test_pdf_statement_shows_belgian_amounts(three_under_leerhuis):
    """The document formats amounts for nl_BE and renders to a PDF."""
    statement = statement_of(three_under_leerhuis, LEERHUIS)

    html = statement_html(statement)

    assert "€\u00a015,75" in html
    assert "€\u00a01.089,00" in html
    assert "Btw 21 %" in html
    assert statement_pdf(statement).startswith(b"%PDF-")


def test_unknown_provider_and_bad_month_say_what_to_give(session_factory):
    """An unknown provider and a month not as YYYY-MM are refused with a reason."""
    with pytest.raises(StatementError, match="no provider '0999999999'"):
        statement_of(session_factory, "0999999999")
    with pytest.raises(StatementError, match="YYYY-MM"):
        parse_month("december")


def test_statement_command_prints_and_writes_csv_and_pdf(
    three_under_leerhuis, settings, tmp_path, monkeypatch
):
    """`dossier statement 0412.345.614 --month 2026-12 --csv F --pdf F`."""
    monkeypatch.setenv("DOSSIER_DATABASE_URL", settings.database_url)
    csv_file, pdf_file = tmp_path / "dec.csv", tmp_path / "dec.pdf"

    result = CliRunner().invoke(
        app,
        [
            "statement",
            "0412.345.614",
            "--month",
            "2026-12",
            "--csv",
            str(csv_file),
            "--pdf",
            str(pdf_file),
        ],
    )

    assert result.exit_code == 0, result.output
    assert "1089.00" in result.output
    assert csv_file.read_text().splitlines()[-1] == "total,,,,,900.00,189.00,1089.00"
    assert pdf_file.read_bytes().startswith(b"%PDF-")


def test_dossier_rows_keep_their_fee_from_intake(three_under_leerhuis):
    """The records hold the fee computed at intake, which the statement reads."""
    with three_under_leerhuis() as session:
        row = session.get(Dossier, "0412345614-ls-2026-0157")
        assert (row.fee_excl_vat, row.fee_vat) == (
            Decimal("600.00"),
            Decimal("126.00"),
        )


def test_markup_and_template_syntax_in_names_stay_text_on_the_pdf(session_factory):
    """A provider and client named with <script> and {{ 7*7 }}: escaped, not run."""
    hostile = SCRIPT + TEMPLATE
    training = fixture_dossier("training-open-1p.xml")
    training = replace(
        training,
        provider=replace(training.provider, name=f"{hostile} {SQL_DROP}"),
        client=replace(training.client, name=hostile),
    )
    record(session_factory, training, datetime(2026, 12, 1, 8, tzinfo=UTC))
    statement = statement_of(session_factory, LEERHUIS)

    html = statement_html(statement)

    assert statement.provider_name == f"{hostile} {SQL_DROP}"
    assert SCRIPT not in html
    assert f"<p>{escape(statement.provider_name)} ({LEERHUIS})<br>" in html
    assert f"<td>{escape(hostile)}</td>" in html
    assert "{{ 7*7 }}" in html  # as text: the template did not run it
    assert statement_pdf(statement).startswith(b"%PDF-")
    assert statement_csv(statement).splitlines()[1].split(",")[2] == hostile


def test_an_output_in_a_missing_folder_is_refused_before_anything_is_written(
    three_under_leerhuis, settings, tmp_path, monkeypatch
):
    """--pdf into a folder that does not exist: exit 1, and no CSV either."""
    monkeypatch.setenv("DOSSIER_DATABASE_URL", settings.database_url)
    csv_file, pdf_file = tmp_path / "dec.csv", tmp_path / "missing" / "dec.pdf"

    result = CliRunner().invoke(
        app,
        ["statement", "0412.345.614", "--month", "2026-12"]
        + ["--csv", str(csv_file), "--pdf", str(pdf_file)],
    )

    assert result.exit_code == 1
    assert f"there is no folder {pdf_file.parent}" in result.output
    assert "Traceback" not in result.output
    assert not csv_file.exists()
