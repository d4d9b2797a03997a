"""Dated programme rules and the warnings they give at intake."""

from datetime import date
from decimal import Decimal

from kmo.models import DocumentType, Invoice, InvoiceLine, Kind, Party
from kmo.rules import intake_warnings, rule_on


def invoice(**fields) -> Invoice:
    base = dict(
        document_type=DocumentType.INVOICE,
        number="T-1",
        issue_date=date(2026, 3, 1),
        period_start=date(2026, 3, 2),
        period_end=date(2026, 3, 2),
        supplier=Party(name="P", enterprise_number="0412.345.614"),
        customer=Party(name="C", enterprise_number="0511.223.355"),
        dv_number="DV.O214567",
        total_excl_vat=Decimal("1000"),
        notes=[],
        lines=[InvoiceLine("1", "Opleiding")],
    )
    base.update(fields)
    return Invoice(**base)


def codes(warnings) -> list[str]:
    return [w.code for w in warnings]


def test_cybersecurity_only_rule_holds_from_1_february_2026():
    """The advice-scope rule is absent the day before and present on the day."""
    assert rule_on("advice_cybersecurity_only", date(2026, 1, 31)) is None
    assert rule_on("advice_cybersecurity_only", date(2026, 2, 1)).value is True


def test_annual_cap_holds_from_2020():
    """The EUR 7,500 cap starts on 1 January 2020."""
    assert rule_on("annual_cap", date(2019, 12, 31)) is None
    assert rule_on("annual_cap", date(2020, 1, 1)).value == Decimal("7500")


def test_a_clean_training_gives_no_warning():
    """A training invoiced before its start, above the minimum, warns of nothing."""
    assert intake_warnings(invoice(), Kind.TRAINING, date(2026, 3, 1)) == []


def test_deadline_near_and_passed():
    """Three days before the deadline it is near; the day after it has passed."""
    near = intake_warnings(invoice(), Kind.TRAINING, date(2026, 3, 13))
    passed = intake_warnings(invoice(), Kind.TRAINING, date(2026, 3, 17))
    assert codes(near) == ["application_deadline_near"]
    assert codes(passed) == ["application_deadline_passed"]


def test_advice_outside_cybersecurity_warns_from_february_2026():
    """An advice on strategy starting 1 Feb 2026 warns; one on 31 Jan does not."""
    on_day = invoice(
        dv_number="DV.A109876",
        issue_date=date(2026, 2, 20),
        period_start=date(2026, 2, 1),
        period_end=date(2026, 2, 20),
        lines=[InvoiceLine("1", "Strategisch advies")],
    )
    day_before = invoice(
        dv_number="DV.A109876",
        issue_date=date(2026, 2, 20),
        period_start=date(2026, 1, 31),
        period_end=date(2026, 2, 20),
        lines=[InvoiceLine("1", "Strategisch advies")],
    )
    assert "advice_not_cybersecurity" in codes(
        intake_warnings(on_day, Kind.ADVICE, date(2026, 2, 1))
    )
    assert "advice_not_cybersecurity" not in codes(
        intake_warnings(day_before, Kind.ADVICE, date(2026, 1, 31))
    )


def test_advice_invoiced_before_delivery_warns():
    """An advice invoiced before its end date is invoiced too early."""
    early = invoice(
        dv_number="DV.A109876",
        issue_date=date(2026, 3, 1),
        period_end=date(2026, 6, 30),
        lines=[InvoiceLine("1", "Cybersecurity advies")],
    )
    assert codes(intake_warnings(early, Kind.ADVICE, date(2026, 3, 1))) == [
        "advice_invoiced_before_delivery"
    ]


def test_below_minimum_same_company_and_wrong_dv_kind():
    """Each broken rule gives its own warning, naming the rule."""
    broken = invoice(
        total_excl_vat=Decimal("99.99"),
        customer=Party(name="P", enterprise_number="0412.345.614"),
        dv_number="DV.A109876",
    )
    warnings = intake_warnings(broken, Kind.TRAINING, date(2026, 3, 1))
    assert codes(warnings) == ["below_minimum", "same_company", "dv_number_wrong_kind"]
    assert "EUR 100" in warnings[0].rule
