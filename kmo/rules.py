"""Programme rules as dated data, and the warnings staff want at intake.

Each rule holds from a date; a dossier is judged by the rules in force on its
own dates (the start of the training or advice, or the invoice date), so a
dossier of 2025 keeps the rules of 2025 when the table grows.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from kmo.models import Invoice, Kind, Warning


@dataclass(frozen=True)
class Rule:
    """One value of one rule, in force from `since` until the next entry."""

    name: str
    since: date
    value: Any
    source: str


RULES: tuple[Rule, ...] = (
    Rule("application_deadline_days", date(2016, 4, 1), 14,
         "application at the latest 14 calendar days after the start"),
    Rule("deposit_deadline_days", date(2016, 4, 1), 30,
         "own share deposited within 30 calendar days"),
    Rule("minimum_project", date(2016, 4, 1),
         {Kind.TRAINING: Decimal("100"), Kind.ADVICE: Decimal("500")},
         "minimum project: training EUR 100, advice EUR 500 excl. VAT"),
    Rule("advice_cybersecurity_only", date(2026, 2, 1), True,
         "from 1 Feb 2026 only cybersecurity advice is subsidised"),
    Rule("annual_cap", date(2020, 1, 1), Decimal("7500"),
         "EUR 7,500 subsidy per company per calendar year"),
    Rule("advice_after_delivery", date(2013, 7, 1), True,
         "advice may not be invoiced before it is delivered"),
    Rule("related_parties", date(2016, 4, 1), True,
         "the provider must refuse an application of a related company"),
    Rule("dv_number_kind", date(2016, 4, 1),
         {Kind.TRAINING: "DV.O", Kind.ADVICE: "DV.A"},
         "training needs a DV.O number, advice a DV.A number"),
    Rule("subsidy_rate", date(2019, 12, 1),
         {"small": Decimal("0.30"), "medium": Decimal("0.20")},
         "subsidy: small enterprise 30 %, medium 20 % of the project excl. VAT"),
    Rule("subsidy_rate_cybersecurity", date(2021, 9, 13),
         {"small": Decimal("0.45"), "medium": Decimal("0.35")},
         "cybersecurity training and advice: small 45 %, medium 35 %"),
    Rule("subsidy_rate_energy", date(2024, 1, 1),
         {"small": Decimal("0.45"), "medium": Decimal("0.35")},
         "energy-efficiency training: small 45 %, medium 35 %"),
    Rule("excluded_topics", date(2020, 7, 1), (
            "mindfulness", "nlp", "neurolinguïstisch*", "mbti",
            "insights discovery", "shiatsu", "reflexolog*", "astrolog*", "hypno*",
            "exam", "exams", "examen*", "rijbewijs*", "permis de conduire",
            "driving licen*", "vliegbrevet*", "pilotenbrevet*", "pilot licen*",
            "brevet de pilote", "teambuilding*", "team building", "networking",
            "netwerkevent*", "netwerkavond*", "réseautage", "studiereis*",
            "study trip*", "voyage d'étude*", "abonnement*", "subscription*",
        ),
         "excluded topics (mindfulness, NLP, MBTI, Insights Discovery, shiatsu, "
         "reflexology, astrology, hypnosis, exams, driving and pilot licences, "
         "teambuilding, networking, study trips, subscriptions)"),
    Rule("catering_max_per_person_day", date(2016, 4, 1), Decimal("25"),
         "catering at most EUR 25 per person per day; separate items not "
         "eligible (the sources give no start date: the 2016 reform is used)"),
    Rule("themes", date(2023, 1, 1), (
            "bedrijfsstrategie", "beroepsspecifieke competenties", "digitalisering",
            "duurzaamheid", "financiële geletterdheid", "innovatie",
            "internationalisering", "personeelsmanagement",
        ),
         "from 2023 a training or advice belongs to one of eight themes"),
)  # fmt: skip

DEADLINE_NEAR = timedelta(days=3)
RETENTION_YEARS = 10


def retention_until(start: date) -> date:
    """The last day to keep a dossier's documents: 10 years after its start date.

    A start on 29 February is kept until 28 February ten years later.
    """
    year = start.year + RETENTION_YEARS
    last_day = calendar.monthrange(year, start.month)[1]
    return date(year, start.month, min(start.day, last_day))


CYBER_WORDS = ("cyber", "informatiebeveiliging", "cybersécurité", "sécurité")


def rule_on(name: str, day: date) -> Rule | None:
    """The entry of rule `name` in force on `day`, or None before its first date."""
    entries = [r for r in RULES if r.name == name and r.since <= day]
    return max(entries, key=lambda r: r.since) if entries else None


def _warn(code: str, message: str, rule: Rule) -> Warning:
    return Warning(
        code=code, message=message, rule=f"{rule.source} (since {rule.since})"
    )


def intake_warnings(invoice: Invoice, kind: Kind, today: date) -> list[Warning]:
    """What staff must look at before the dossier runs; empty when all is well."""
    start = invoice.period_start or invoice.issue_date or today
    checks = (
        _application_deadline(start, today),
        _advice_before_delivery(invoice, kind),
        _advice_scope(invoice, kind, start),
        _below_minimum(invoice, kind, start),
        _excluded_topic(invoice, start),
        _same_company(invoice, start),
        _dv_kind(invoice, kind, start),
    )
    return [w for w in checks if w is not None]


def _application_deadline(start: date, today: date) -> Warning | None:
    rule = rule_on("application_deadline_days", start)
    if rule is None:
        return None
    deadline = start + timedelta(days=rule.value)
    if today > deadline:
        return _warn(
            "application_deadline_passed",
            f"the application deadline ({deadline}) has passed: without an "
            "application filed in time there is no subsidy",
            rule,
        )
    if today >= deadline - DEADLINE_NEAR:
        return _warn(
            "application_deadline_near",
            f"the application deadline is {deadline}: the client must file now",
            rule,
        )
    return None


def _advice_before_delivery(invoice: Invoice, kind: Kind) -> Warning | None:
    rule = rule_on("advice_after_delivery", invoice.issue_date or date.max)
    end = invoice.period_end
    if kind != Kind.ADVICE or rule is None or not invoice.issue_date or not end:
        return None
    if invoice.issue_date < end:
        return _warn(
            "advice_invoiced_before_delivery",
            f"the advice runs until {end} but was invoiced on {invoice.issue_date}",
            rule,
        )
    return None


def invoice_text(invoice: Invoice) -> str:
    """The invoice's free text: its notes, line descriptions and line notes."""
    parts = list(invoice.notes)
    for line in invoice.lines:
        parts.append(line.description)
        parts.extend(line.notes)
    return " ".join(parts)


def excluded_word(text: str, day: date) -> str | None:
    """The first word of `text` naming a topic excluded on `day`, else None.

    An entry ending in `*` matches words that start with it ("hypno*" finds
    "hypnotherapie"); any other entry matches whole words only, so "exam"
    does not find "example".
    """
    rule = rule_on("excluded_topics", day)
    if rule is None:
        return None
    found = [m for m in (word_pattern(e).search(text) for e in rule.value) if m]
    if not found:
        return None
    return min(found, key=lambda match: match.start()).group(0)


def word_pattern(entry: str) -> re.Pattern[str]:
    """A case-blind pattern for `entry`: a whole word, or a word start with `*`."""
    stem = re.escape(entry.removesuffix("*"))
    tail = r"\w*" if entry.endswith("*") else r"(?!\w)"
    return re.compile(rf"(?<!\w){stem}{tail}", re.IGNORECASE)


def _excluded_topic(invoice: Invoice, start: date) -> Warning | None:
    rule = rule_on("excluded_topics", start)
    word = excluded_word(invoice_text(invoice), start)
    if rule is None or word is None:
        return None
    return _warn(
        "excluded_topic",
        f"the invoice mentions '{word}', a topic the KMO-portefeuille does not "
        "subsidise",
        rule,
    )


def annual_cap_warning(
    subsidies: Iterable[tuple[int, Decimal]], year: int
) -> Warning | None:
    """Warn when a client's expected subsidies of `year` exceed the annual cap.

    `subsidies` holds (calendar year, expected subsidy) per dossier of the
    client, the new dossier included; other years are ignored.
    """
    rule = rule_on("annual_cap", date(year, 12, 31))
    if rule is None:
        return None
    this_year = [amount for each_year, amount in subsidies if each_year == year]
    total = sum(this_year, Decimal("0"))
    if total <= rule.value:
        return None
    return _warn(
        "annual_cap_exceeded",
        f"the client's expected subsidy for {year} is EUR {total:,.2f}, over the "
        f"cap of EUR {rule.value:,.0f} per calendar year: the excess is not paid",
        rule,
    )


def _advice_scope(invoice: Invoice, kind: Kind, start: date) -> Warning | None:
    rule = rule_on("advice_cybersecurity_only", start)
    if kind != Kind.ADVICE or rule is None:
        return None
    text = " ".join(invoice.notes + [line.description for line in invoice.lines])
    if not any(word in text.lower() for word in CYBER_WORDS):
        return _warn(
            "advice_not_cybersecurity",
            "advice that starts from 1 February 2026 is only subsidised when it "
            "is about cybersecurity; nothing in the invoice says so",
            rule,
        )
    return None


def _below_minimum(invoice: Invoice, kind: Kind, start: date) -> Warning | None:
    rule = rule_on("minimum_project", start)
    total = invoice.total_excl_vat
    if rule is None or total is None or total >= rule.value[kind]:
        return None
    return _warn(
        "below_minimum",
        f"the project of EUR {total} excl. VAT is below the minimum of "
        f"EUR {rule.value[kind]} for {kind.value}",
        rule,
    )


def _same_company(invoice: Invoice, start: date) -> Warning | None:
    rule = rule_on("related_parties", start)
    supplier = invoice.supplier.enterprise_number
    if rule is None or supplier is None:
        return None
    if supplier == invoice.customer.enterprise_number:
        return _warn(
            "same_company",
            f"client and provider are the same company ({supplier})",
            rule,
        )
    return None


def _dv_kind(invoice: Invoice, kind: Kind, start: date) -> Warning | None:
    rule = rule_on("dv_number_kind", start)
    dv = invoice.dv_number or ""
    if rule is None:
        return None
    expected = rule.value[kind]
    if dv and not dv.startswith(expected):
        return _warn(
            "dv_number_wrong_kind",
            f"{dv} is not a number for {kind.value} ({expected}…)",
            rule,
        )
    return None
