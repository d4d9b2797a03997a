"""The subsidy a client can expect, and the own share it deposits.

The government pays a rate of the project amount excl. VAT; the client
deposits the rest (its own share, eigen aandeel) in its wallet. The rate
depends on the company size (small or medium, known only when the client
says so: small is assumed until then) and on the theme: cybersecurity
(training and advice) and energy efficiency (training) get a higher rate.
Advice outside cybersecurity that starts from 1 February 2026 gets nothing.
Rates come from the dated rule table, judged on the start date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from kmo.models import Kind
from kmo.rules import CYBER_WORDS, Rule, rule_on, word_pattern

SMALL, MEDIUM = "small", "medium"
COMPANY_SIZES = (SMALL, MEDIUM)
GENERAL, CYBERSECURITY, ENERGY = "general", "cybersecurity", "energy"
ENERGY_WORDS = ("energie*", "énergie*", "energy*", "energetisch*", "énergétique*")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Subsidy:
    """What the client can expect for one dossier, in euro rounded to cents."""

    project_amount: Decimal  # excl. VAT
    rate: Decimal
    subsidy: Decimal
    own_share: Decimal
    company_size: str  # the size the rate is for
    size_assumed: bool  # True when the client did not say its size
    theme: str
    rule: str


def theme_of(kind: Kind, text: str) -> str:
    """The theme that sets the rate: cybersecurity, energy (training) or general."""
    lowered = text.lower()
    if any(word in lowered for word in CYBER_WORDS):
        return CYBERSECURITY
    if kind == Kind.TRAINING and any(
        word_pattern(word).search(text) for word in ENERGY_WORDS
    ):
        return ENERGY
    return GENERAL


def expected_subsidy(
    kind: Kind,
    project_amount: Decimal,
    start: date,
    *,
    company_size: str | None = None,
    theme: str = GENERAL,
) -> Subsidy | None:
    """The subsidy and own share for a project starting on `start`.

    None before the first rate in the table (1 December 2019).
    """
    size = company_size if company_size in COMPANY_SIZES else SMALL
    rule = _rate_rule(kind, theme, start)
    if rule is None:
        return None
    rate = (
        Decimal("0") if _outside_advice_scope(kind, theme, start) else rule.value[size]
    )
    subsidy = (project_amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    return Subsidy(
        project_amount=project_amount.quantize(CENT, rounding=ROUND_HALF_UP),
        rate=rate,
        subsidy=subsidy,
        own_share=(project_amount - subsidy).quantize(CENT, rounding=ROUND_HALF_UP),
        company_size=size,
        size_assumed=company_size not in COMPANY_SIZES,
        theme=theme,
        rule=f"{rule.source} (since {rule.since})",
    )


def _rate_rule(kind: Kind, theme: str, start: date) -> Rule | None:
    if theme == CYBERSECURITY:
        rule = rule_on("subsidy_rate_cybersecurity", start)
    elif theme == ENERGY and kind == Kind.TRAINING:
        rule = rule_on("subsidy_rate_energy", start)
    else:
        rule = None
    return rule or rule_on("subsidy_rate", start)


def _outside_advice_scope(kind: Kind, theme: str, start: date) -> bool:
    scope = rule_on("advice_cybersecurity_only", start)
    return kind == Kind.ADVICE and scope is not None and theme != CYBERSECURITY
