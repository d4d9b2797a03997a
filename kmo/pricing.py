"""Our fee per dossier (excl. VAT), as the brochure sets it.

Training: 50 per dossier + 25 per participant, + 25 per running month when
the training spans more than one month. Advice: 50 per dossier + 25 per
running month + 25 closing fee. VAT 21 %.
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from kmo.models import Fee, FeeLine, Kind

DOSSIER_FEE = Decimal("50")
PARTICIPANT_FEE = Decimal("25")
MONTH_FEE = Decimal("25")
CLOSING_FEE = Decimal("25")
VAT_RATE = Decimal("0.21")
CENT = Decimal("0.01")


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def running_months(start: date, end: date) -> int:
    """Started months (lopende maanden) from `start` to `end`, both included.

    1 to 31 January is one month; 11 January to 13 December is twelve.
    """
    if end < start:
        raise ValueError(f"end date {end} lies before start date {start}")
    months = 1
    while add_months(start, months) <= end:
        months += 1
    return months


def compute_fee(kind: Kind, start: date, end: date, participants: int = 0) -> Fee:
    months = running_months(start, end)
    lines = [FeeLine("dossier", 1, DOSSIER_FEE, DOSSIER_FEE)]
    if kind == Kind.TRAINING:
        if participants < 1:
            raise ValueError("a training dossier needs at least one participant")
        lines.append(
            FeeLine(
                "participant",
                participants,
                PARTICIPANT_FEE,
                PARTICIPANT_FEE * participants,
            )
        )
        if months > 1:
            lines.append(
                FeeLine("running month", months, MONTH_FEE, MONTH_FEE * months)
            )
    else:
        lines.append(FeeLine("running month", months, MONTH_FEE, MONTH_FEE * months))
        lines.append(FeeLine("closing", 1, CLOSING_FEE, CLOSING_FEE))
    total = sum((line.amount for line in lines), Decimal("0"))
    vat = (total * VAT_RATE).quantize(CENT)
    return Fee(
        lines=lines,
        total_excl_vat=total.quantize(CENT),
        vat_rate=VAT_RATE,
        vat=vat,
        total_incl_vat=(total + vat).quantize(CENT),
        running_months=months,
    )
