"""Expected subsidy and own share by company size, theme and date."""

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from kmo.models import Kind
from kmo.subsidy import (
    CYBERSECURITY,
    ENERGY,
    GENERAL,
    expected_subsidy,
    theme_of,
)


def amounts(subsidy) -> tuple[Decimal, Decimal, Decimal]:
    return subsidy.rate, subsidy.subsidy, subsidy.own_share


def test_small_enterprise_gets_30_percent_of_an_open_training():
    """EUR 395 excl. VAT: 118.50 subsidy, 276.50 own share, small assumed."""
    subsidy = expected_subsidy(Kind.TRAINING, Decimal("395.00"), date(2026, 12, 8))

    assert amounts(subsidy) == (
        Decimal("0.30"),
        Decimal("118.50"),
        Decimal("276.50"),
    )
    assert subsidy.company_size == "small"
    assert subsidy.size_assumed is True


def test_medium_enterprise_gets_20_percent():
    """EUR 14,500 for a medium enterprise: 2,900.00 subsidy, 11,600.00 own share."""
    subsidy = expected_subsidy(
        Kind.TRAINING, Decimal("14500.00"), date(2027, 1, 11), company_size="medium"
    )

    assert amounts(subsidy) == (
        Decimal("0.20"),
        Decimal("2900.00"),
        Decimal("11600.00"),
    )
    assert subsidy.size_assumed is False


def test_cybersecurity_advice_gets_45_percent_when_small():
    """The fixture's EUR 6,800 cybersecurity advice: 3,060.00 and 3,740.00."""
    subsidy = expected_subsidy(
        Kind.ADVICE, Decimal("6800.00"), date(2026, 6, 1), theme=CYBERSECURITY
    )

    assert amounts(subsidy) == (
        Decimal("0.45"),
        Decimal("3060.00"),
        Decimal("3740.00"),
    )


def test_cybersecurity_rate_starts_on_13_september_2021():
    """A medium cyber training of EUR 1,000 gets 200.00 on 12 Sep, 350.00 on 13."""
    day_before = expected_subsidy(
        Kind.TRAINING,
        Decimal("1000"),
        date(2021, 9, 12),
        company_size="medium",
        theme=CYBERSECURITY,
    )
    on_day = expected_subsidy(
        Kind.TRAINING,
        Decimal("1000"),
        date(2021, 9, 13),
        company_size="medium",
        theme=CYBERSECURITY,
    )

    assert day_before.subsidy == Decimal("200.00")
    assert on_day.subsidy == Decimal("350.00")


def test_energy_rate_starts_in_2024_and_only_for_training():
    """Energy training: 300.00 on 31 Dec 2023, 450.00 on 1 Jan 2024; advice: no."""
    before = expected_subsidy(
        Kind.TRAINING, Decimal("1000"), date(2023, 12, 31), theme=ENERGY
    )
    on_day = expected_subsidy(
        Kind.TRAINING, Decimal("1000"), date(2024, 1, 1), theme=ENERGY
    )
    advice = expected_subsidy(
        Kind.ADVICE, Decimal("1000"), date(2025, 1, 1), theme=ENERGY
    )

    assert before.subsidy == Decimal("300.00")
    assert on_day.subsidy == Decimal("450.00")
    assert advice.subsidy == Decimal("300.00")


def test_no_rate_before_1_december_2019():
    """The table starts on 1 Dec 2019: no estimate the day before, 30 % on the day."""
    assert expected_subsidy(Kind.TRAINING, Decimal("1000"), date(2019, 11, 30)) is None
    on_day = expected_subsidy(Kind.TRAINING, Decimal("1000"), date(2019, 12, 1))
    assert on_day.subsidy == Decimal("300.00")


def test_advice_outside_cybersecurity_gets_nothing_from_february_2026():
    """Strategy advice of EUR 2,000: 600.00 on 31 Jan 2026, 0.00 on 1 Feb 2026."""
    before = expected_subsidy(Kind.ADVICE, Decimal("2000"), date(2026, 1, 31))
    on_day = expected_subsidy(Kind.ADVICE, Decimal("2000"), date(2026, 2, 1))

    assert before.subsidy == Decimal("600.00")
    assert amounts(on_day) == (Decimal("0"), Decimal("0.00"), Decimal("2000.00"))


def test_amounts_are_rounded_to_cents_half_up():
    """EUR 99.95 at 45 %: 44.9775 rounds to 44.98; own share 54.97."""
    subsidy = expected_subsidy(
        Kind.TRAINING, Decimal("99.95"), date(2026, 3, 1), theme=CYBERSECURITY
    )

    assert (subsidy.subsidy, subsidy.own_share) == (Decimal("44.98"), Decimal("54.97"))


def test_theme_is_read_from_the_invoice_text():
    """Cyber words make cybersecurity; energy words make energy for training only."""
    assert theme_of(Kind.ADVICE, "Advies informatiebeveiliging") == CYBERSECURITY
    assert theme_of(Kind.TRAINING, "Opleiding energie-efficiëntie") == ENERGY
    assert theme_of(Kind.ADVICE, "Advies energiebeleid") == GENERAL
    assert theme_of(Kind.TRAINING, "Opleiding Excel voor gevorderden") == GENERAL


@given(
    amount=st.decimals(min_value=0, max_value=1_000_000, places=2),
    size=st.sampled_from(["small", "medium", None]),
    theme=st.sampled_from([GENERAL, CYBERSECURITY, ENERGY]),
    kind=st.sampled_from([Kind.TRAINING, Kind.ADVICE]),
)
def test_subsidy_and_own_share_add_up_to_the_project_amount(amount, size, theme, kind):
    """Whatever the size and theme, subsidy + own share is the project amount."""
    subsidy = expected_subsidy(
        kind, amount, date(2026, 3, 1), company_size=size, theme=theme
    )

    assert subsidy.subsidy + subsidy.own_share == amount
    assert Decimal("0") <= subsidy.subsidy <= amount
