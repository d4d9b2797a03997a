"""Dated programme rules and the warnings they give at intake."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

from kmo.models import DocumentType, Invoice, InvoiceLine, Kind, Party
from kmo.rules import annual_cap_warning, excluded_word, intake_warnings, rule_on


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


def test_subsidy_rates_hold_from_1_december_2019():
    """No general rate on 30 Nov 2019; 30 % small and 20 % medium from 1 Dec."""
    assert rule_on("subsidy_rate", date(2019, 11, 30)) is None
    assert rule_on("subsidy_rate", date(2019, 12, 1)).value == {
        "small": Decimal("0.30"),
        "medium": Decimal("0.20"),
    }


def test_cybersecurity_rate_holds_from_13_september_2021():
    """The 45 % / 35 % cybersecurity rate is absent on 12 Sep 2021, in force on 13."""
    assert rule_on("subsidy_rate_cybersecurity", date(2021, 9, 12)) is None
    assert rule_on("subsidy_rate_cybersecurity", date(2021, 9, 13)).value == {
        "small": Decimal("0.45"),
        "medium": Decimal("0.35"),
    }


def test_energy_rate_holds_from_2024():
    """The energy-efficiency rate is absent on 31 Dec 2023, in force on 1 Jan 2024."""
    assert rule_on("subsidy_rate_energy", date(2023, 12, 31)) is None
    assert rule_on("subsidy_rate_energy", date(2024, 1, 1)).value["small"] == Decimal(
        "0.45"
    )


def test_themes_hold_from_2023_and_catering_is_25_a_day():
    """Eight themes from 1 Jan 2023 (none the day before); catering max EUR 25."""
    assert rule_on("themes", date(2022, 12, 31)) is None
    assert len(rule_on("themes", date(2023, 1, 1)).value) == 8
    assert "digitalisering" in rule_on("themes", date(2023, 1, 1)).value
    assert rule_on("catering_max_per_person_day", date(2026, 1, 1)).value == Decimal(
        "25"
    )


def test_excluded_topics_hold_from_1_july_2020():
    """A teambuilding warns from 1 Jul 2020 and not on 30 Jun 2020."""
    teambuilding = invoice(lines=[InvoiceLine("1", "Teambuilding op de Schelde")])
    day_before = replace(
        teambuilding, period_start=date(2020, 6, 30), period_end=date(2020, 6, 30)
    )
    on_day = replace(
        teambuilding, period_start=date(2020, 7, 1), period_end=date(2020, 7, 1)
    )

    assert "excluded_topic" not in codes(
        intake_warnings(day_before, Kind.TRAINING, date(2020, 6, 20))
    )
    assert "excluded_topic" in codes(
        intake_warnings(on_day, Kind.TRAINING, date(2020, 6, 20))
    )


def test_excluded_topic_warning_names_the_matched_word():
    """A line note on hypnotherapy warns with the word as the invoice writes it."""
    hypnosis = invoice(
        lines=[InvoiceLine("1", "Opleiding", notes=["Module Hypnotherapie"])]
    )

    warnings = intake_warnings(hypnosis, Kind.TRAINING, date(2026, 3, 1))

    assert codes(warnings) == ["excluded_topic"]
    assert "'Hypnotherapie'" in warnings[0].message
    assert "since 2020-07-01" in warnings[0].rule


def test_excluded_words_match_whole_words_or_word_starts():
    """'exam' is not found in 'example'; 'examen*' finds 'examencoaching'."""
    day = date(2026, 3, 1)

    assert excluded_word("see example.com for the programme", day) is None
    assert excluded_word("Examencoaching VCA", day) == "Examencoaching"
    assert excluded_word("Workshop NLP en coaching", day) == "NLP"
    assert excluded_word("Opleiding Excel voor gevorderden", day) is None


def test_cap_is_exceeded_by_the_sum_of_one_clients_dossiers_in_a_year():
    """3,060 + 4,350 stays under 7,500; a third dossier of 118.50 goes over."""
    two = [(2026, Decimal("3060.00")), (2026, Decimal("4350.00"))]
    three = [*two, (2026, Decimal("118.50"))]

    assert annual_cap_warning(two, 2026) is None
    warning = annual_cap_warning(three, 2026)
    assert warning.code == "annual_cap_exceeded"
    assert "EUR 7,528.50" in warning.message
    assert "since 2020-01-01" in warning.rule


def test_cap_counts_only_the_dossiers_of_that_calendar_year():
    """Subsidies of 2025 do not count towards the cap of 2026."""
    subsidies = [(2025, Decimal("7000.00")), (2026, Decimal("600.00"))]

    assert annual_cap_warning(subsidies, 2026) is None
    assert annual_cap_warning([(2026, Decimal("7500.00"))], 2026) is None
    assert annual_cap_warning([(2026, Decimal("7500.01"))], 2026) is not None


def test_cap_does_not_apply_before_2020():
    """In 2019 there was no annual cap to exceed."""
    assert annual_cap_warning([(2019, Decimal("9000.00"))], 2019) is None


# --- the rules of the 2016 reform and of 1 July 2013: day before and day of ---


def test_application_and_deposit_deadlines_hold_from_1_april_2016():
    """14 days to apply and 30 to deposit from 1 Apr 2016; none the day before."""
    for name, days in [
        ("application_deadline_days", 14),
        ("deposit_deadline_days", 30),
    ]:
        assert rule_on(name, date(2016, 3, 31)) is None
        assert rule_on(name, date(2016, 4, 1)).value == days


def test_application_deadline_warns_from_a_start_on_1_april_2016():
    """A start on 31 Mar 2016 has no deadline to warn of; one on 1 Apr 2016 has."""
    day_before = invoice(
        issue_date=date(2016, 3, 31),
        period_start=date(2016, 3, 31),
        period_end=date(2016, 3, 31),
    )
    on_day = replace(
        day_before,
        issue_date=date(2016, 4, 1),
        period_start=date(2016, 4, 1),
        period_end=date(2016, 4, 1),
    )
    later = date(2016, 6, 1)

    assert codes(intake_warnings(day_before, Kind.TRAINING, later)) == []
    warnings = intake_warnings(on_day, Kind.TRAINING, later)
    assert codes(warnings) == ["application_deadline_passed"]
    assert "(2016-04-15)" in warnings[0].message
    assert "since 2016-04-01" in warnings[0].rule


def test_minimum_project_holds_from_1_april_2016():
    """EUR 99.99 of training is below the minimum from 1 Apr 2016, not on 31 Mar."""
    assert rule_on("minimum_project", date(2016, 3, 31)) is None
    assert rule_on("minimum_project", date(2016, 4, 1)).value == {
        Kind.TRAINING: Decimal("100"),
        Kind.ADVICE: Decimal("500"),
    }
    small = invoice(total_excl_vat=Decimal("99.99"))
    day_before = replace(
        small, period_start=date(2016, 3, 31), period_end=date(2016, 3, 31)
    )
    on_day = replace(small, period_start=date(2016, 4, 1), period_end=date(2016, 4, 1))
    today = date(2016, 3, 20)  # before both starts: no deadline warning

    assert codes(intake_warnings(day_before, Kind.TRAINING, today)) == []
    assert codes(intake_warnings(on_day, Kind.TRAINING, today)) == ["below_minimum"]


def test_same_company_warns_from_1_april_2016():
    """The related-parties rule: the same enterprise number warns from 1 Apr 2016."""
    assert rule_on("related_parties", date(2016, 3, 31)) is None
    assert rule_on("related_parties", date(2016, 4, 1)).value is True
    same = invoice(customer=Party(name="P", enterprise_number="0412.345.614"))
    day_before = replace(
        same, period_start=date(2016, 3, 31), period_end=date(2016, 3, 31)
    )
    on_day = replace(same, period_start=date(2016, 4, 1), period_end=date(2016, 4, 1))
    today = date(2016, 3, 20)

    assert codes(intake_warnings(day_before, Kind.TRAINING, today)) == []
    assert codes(intake_warnings(on_day, Kind.TRAINING, today)) == ["same_company"]


def test_catering_maximum_holds_from_1_april_2016():
    """EUR 25 per person per day from 1 Apr 2016 (the reform's date); none before."""
    assert rule_on("catering_max_per_person_day", date(2016, 3, 31)) is None
    assert rule_on("catering_max_per_person_day", date(2016, 4, 1)).value == Decimal(
        "25"
    )


def test_advice_after_delivery_holds_from_1_july_2013():
    """An advice invoiced before its end warns when invoiced from 1 Jul 2013 on."""
    assert rule_on("advice_after_delivery", date(2013, 6, 30)) is None
    assert rule_on("advice_after_delivery", date(2013, 7, 1)).value is True
    early = invoice(
        dv_number="DV.A109876",
        period_start=date(2013, 6, 1),
        period_end=date(2013, 9, 30),
        total_excl_vat=Decimal("5000"),
        lines=[InvoiceLine("1", "Cybersecurity advies")],
    )
    day_before = replace(early, issue_date=date(2013, 6, 30))
    on_day = replace(early, issue_date=date(2013, 7, 1))
    today = date(2013, 6, 2)

    assert codes(intake_warnings(day_before, Kind.ADVICE, today)) == []
    warnings = intake_warnings(on_day, Kind.ADVICE, today)
    assert codes(warnings) == ["advice_invoiced_before_delivery"]
    assert "since 2013-07-01" in warnings[0].rule


def test_every_dated_rule_has_a_day_before_and_a_day_of():
    """Each entry of RULES is in force on its date and, for its first, not before.

    A later entry of a rule replaces the earlier one from its own date, so
    the day before a later entry gives the earlier value.
    """
    from datetime import timedelta

    from kmo.rules import RULES

    for rule in RULES:
        assert rule_on(rule.name, rule.since) == rule, rule.name
        before = rule_on(rule.name, rule.since - timedelta(days=1))
        assert before is None or before.since < rule.since, rule.name


def test_dv_number_kind_warns_from_1_april_2016():
    """A DV.A number on a training warns for a start from 1 Apr 2016, not before."""
    assert rule_on("dv_number_kind", date(2016, 3, 31)) is None
    assert rule_on("dv_number_kind", date(2016, 4, 1)).value[Kind.ADVICE] == "DV.A"
    wrong = invoice(dv_number="DV.A109876")
    day_before = replace(
        wrong, period_start=date(2016, 3, 31), period_end=date(2016, 3, 31)
    )
    on_day = replace(wrong, period_start=date(2016, 4, 1), period_end=date(2016, 4, 1))
    today = date(2016, 3, 20)

    assert codes(intake_warnings(day_before, Kind.TRAINING, today)) == []
    warnings = intake_warnings(on_day, Kind.TRAINING, today)
    assert codes(warnings) == ["dv_number_wrong_kind"]
    assert "since 2016-04-01" in warnings[0].rule
