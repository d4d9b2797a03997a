"""The monthly fee statement of one provider: our fee for each of its dossiers.

A dossier is on the statement of the month in which it was created, that is
when intake received its invoice: the fee is fixed then (it depends only on
the invoice) and the provider is charged once per dossier, without waiting a
year for a long training to close. A dossier cancelled by a credit note owes
no fee and is left out; a lapsed one was followed up and stays in. Months are
Belgian calendar months. The statement shows the records as they are when it
is made.

CSV: one row per dossier, then a total row; comma-separated, amounts with a
decimal point and dates as YYYY-MM-DD, for spreadsheets and bookkeeping
imports alike. PDF: `templates/nl/statement.html` through WeasyPrint, amounts
formatted for nl_BE by babel.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import weasyprint  # type: ignore[import-untyped]  # ships no type hints
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.records import Dossier, Provider
from adapters.templates import render_document
from kmo.calendar import BRUSSELS
from kmo.pricing import add_months
from workflows.messages import Step

VAT_RATE = Decimal("0.21")
ZERO = Decimal("0.00")
CSV_HEADER = (
    "dossier",
    "invoice",
    "client",
    "kind",
    "created",
    "fee_excl_vat",
    "vat",
    "fee_incl_vat",
)


class StatementError(ValueError):
    """The statement cannot be made; the message says what to give instead."""


@dataclass(frozen=True)
class StatementRow:
    dossier_id: str
    invoice_number: str
    client_name: str
    kind: str
    created_on: date
    fee_excl_vat: Decimal
    vat: Decimal
    fee_incl_vat: Decimal


@dataclass(frozen=True)
class Statement:
    provider_id: str
    provider_name: str
    month: date  # its first day
    rows: list[StatementRow]

    @property
    def total_excl_vat(self) -> Decimal:
        return sum((row.fee_excl_vat for row in self.rows), ZERO)

    @property
    def total_vat(self) -> Decimal:
        return sum((row.vat for row in self.rows), ZERO)

    @property
    def total_incl_vat(self) -> Decimal:
        return sum((row.fee_incl_vat for row in self.rows), ZERO)


def parse_month(text: str) -> date:
    """'2026-12' -> 1 December 2026."""
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(year, month, 1)
    except ValueError as error:
        raise StatementError(f"'{text}' is not a month; write it as YYYY-MM") from error


def build_statement(session: Session, provider_id: str, month: date) -> Statement:
    """The provider's dossiers created in `month` (Belgian time), oldest first."""
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise StatementError(f"there is no provider '{provider_id}' in the records")
    start = datetime.combine(month, datetime.min.time(), BRUSSELS)
    end = datetime.combine(add_months(month, 1), datetime.min.time(), BRUSSELS)
    dossiers = session.scalars(
        select(Dossier)
        .where(Dossier.provider_id == provider_id)
        .where(Dossier.created_at >= start, Dossier.created_at < end)
        .order_by(Dossier.created_at, Dossier.dossier_id)
    ).all()
    rows = [_row(d) for d in dossiers if d.outcome != Step.CANCELLED.value]
    return Statement(provider_id, provider.name, month, rows)


def _row(dossier: Dossier) -> StatementRow:
    fee = dossier.fee_excl_vat or ZERO
    vat = dossier.fee_vat if dossier.fee_vat is not None else fee * VAT_RATE
    return StatementRow(
        dossier_id=dossier.dossier_id,
        invoice_number=dossier.invoice_number,
        client_name=dossier.client_name,
        kind=dossier.kind,
        created_on=dossier.created_at.astimezone(BRUSSELS).date(),
        fee_excl_vat=fee.quantize(ZERO),
        vat=vat.quantize(ZERO),
        fee_incl_vat=(fee + vat).quantize(ZERO),
    )


def statement_csv(statement: Statement) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in statement.rows:
        writer.writerow(
            (
                row.dossier_id,
                row.invoice_number,
                row.client_name,
                row.kind,
                row.created_on.isoformat(),
                row.fee_excl_vat,
                row.vat,
                row.fee_incl_vat,
            )
        )
    writer.writerow(
        (
            "total",
            "",
            "",
            "",
            "",
            statement.total_excl_vat,
            statement.total_vat,
            statement.total_incl_vat,
        )
    )
    return out.getvalue()


def statement_html(statement: Statement) -> str:
    return render_document(
        "statement.html", "nl", {"statement": statement, "vat_rate": VAT_RATE * 100}
    )


def statement_pdf(statement: Statement) -> bytes:
    return weasyprint.HTML(string=statement_html(statement)).write_pdf()


def statement_text(statement: Statement) -> str:
    """The statement for a terminal."""
    month = statement.month.strftime("%Y-%m")
    lines = [
        f"Fee statement {month}: {statement.provider_name} ({statement.provider_id})"
    ]
    lines += [
        f"  {row.created_on}  {row.dossier_id:<32} {row.fee_excl_vat:>9} "
        f"{row.vat:>8} {row.fee_incl_vat:>9}"
        for row in statement.rows
    ]
    lines.append(
        f"  {'total':<44} {statement.total_excl_vat:>9} {statement.total_vat:>8} "
        f"{statement.total_incl_vat:>9}"
    )
    return "\n".join(lines)
