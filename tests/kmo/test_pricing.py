"""Our fee: the brochure's five examples and the running-month count."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmo.models import Kind
from kmo.pricing import compute_fee, running_months


def test_open_training_with_one_participant_costs_75():
    """Open training, 1 participant: 50 + 25 = 75."""
    fee = compute_fee(Kind.TRAINING, date(2026, 12, 8), date(2026, 12, 8), 1)
    assert fee.total_excl_vat == Decimal("75.00")


def test_in_company_training_with_ten_participants_costs_300():
    """In-company training, 10 participants, within one month: 50 + 250 = 300."""
    fee = compute_fee(Kind.TRAINING, date(2027, 3, 1), date(2027, 3, 19), 10)
    assert fee.total_excl_vat == Decimal("300.00")


def test_in_company_training_over_a_year_costs_600():
    """10 participants over twelve running months: 50 + 250 + 300 = 600."""
    fee = compute_fee(Kind.TRAINING, date(2027, 1, 11), date(2027, 12, 13), 10)
    assert fee.total_excl_vat == Decimal("600.00")
    assert fee.running_months == 12


def test_advice_shorter_than_a_month_costs_100():
    """Advice under a month: 50 + 25 + 25 closing = 100."""
    fee = compute_fee(Kind.ADVICE, date(2026, 5, 4), date(2026, 5, 20))
    assert fee.total_excl_vat == Decimal("100.00")


def test_advice_running_six_months_costs_225():
    """Advice of six running months: 50 + 150 + 25 closing = 225."""
    fee = compute_fee(Kind.ADVICE, date(2026, 6, 1), date(2026, 11, 27))
    assert fee.total_excl_vat == Decimal("225.00")


def test_vat_is_21_percent_on_top():
    """VAT 21 % of 600 is 126, 726 in all."""
    fee = compute_fee(Kind.TRAINING, date(2027, 1, 11), date(2027, 12, 13), 10)
    assert (fee.vat, fee.total_incl_vat) == (Decimal("126.00"), Decimal("726.00"))


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        (date(2027, 1, 1), date(2027, 1, 31), 1),
        (date(2027, 1, 11), date(2027, 12, 13), 12),
        (date(2027, 1, 31), date(2027, 2, 28), 2),
        (date(2027, 1, 15), date(2027, 2, 14), 1),
        (date(2027, 1, 15), date(2027, 2, 15), 2),
    ],
)
def test_running_months_counts_started_months(start, end, months):
    """A month starts on the start date's day number, clamped to short months."""
    assert running_months(start, end) == months


def test_end_before_start_is_refused():
    """An end date before the start is an input error, not zero months."""
    with pytest.raises(ValueError, match="lies before"):
        running_months(date(2027, 2, 1), date(2027, 1, 1))


@given(
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    days=st.integers(min_value=0, max_value=800),
)
def test_running_months_grow_with_the_end_date(start, days):
    """A later end never gives fewer months, and a month adds at most one."""
    from datetime import timedelta

    end = start + timedelta(days=days)
    months = running_months(start, end)
    assert 1 <= months <= days // 28 + 1
    assert running_months(start, end + timedelta(days=1)) in (months, months + 1)
