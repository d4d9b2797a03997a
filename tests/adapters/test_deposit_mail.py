"""The deposit mail shows the project amount, the subsidy and the own share."""

from __future__ import annotations

import pytest

from adapters.templates import mail_context, render_mail
from tests.factories import advice_dossier

AMOUNTS = {
    "deadline": "2026-07-15",
    "project_amount": "6800.00",
    "subsidy": "3060.00",
    "own_share": "3740.00",
    "subsidy_rate": "45",
    "company_size": "small",
    "size_assumed": "yes",
}


def deposit_mail(language: str, **extra: str):
    return render_mail(
        "deposit", language, mail_context(advice_dossier(), extra=AMOUNTS | extra)
    )


def test_dutch_deposit_mail_gives_the_three_amounts_and_says_vat_goes_direct():
    """Project 6.800,00, subsidy 45 % 3.060,00, own share 3.740,00; VAT direct."""
    mail = deposit_mail("nl")

    assert "€\u00a03.740,00: het projectbedrag exclusief btw (€\u00a06.800,00)" in (
        mail.text
    )
    assert "min de subsidie van 45 % (€\u00a03.060,00)" in mail.text
    assert "rechtstreeks aan Cyberveilig Advies CommV" in mail.text
    assert "<strong>€\u00a03.740,00</strong>" in mail.html


def test_deposit_mail_says_a_small_enterprise_was_assumed_only_when_it_was():
    """Without a known size the mail says small was assumed; with one it does not."""
    assumed = deposit_mail("nl")
    known = deposit_mail("nl", size_assumed="")

    assert "We gingen uit van een kleine onderneming" in assumed.text
    assert "We gingen uit van een kleine onderneming" not in known.text


@pytest.mark.parametrize(
    ("language", "own_share", "vat"),
    [
        ("fr", "3\u202f740,00\u00a0€", "directement à Cyberveilig Advies CommV"),
        ("en", "€3,740.00", "directly to Cyberveilig Advies CommV"),
    ],
)
def test_french_and_english_deposit_mails_give_the_own_share(language, own_share, vat):
    """The own share is formatted in the client's language; VAT goes direct."""
    mail = deposit_mail(language)

    assert own_share in mail.text
    assert vat in mail.text


def test_without_amounts_the_mail_points_to_the_e_loket():
    """An older dossier's mail (no amounts given) keeps the e-loket wording."""
    mail = render_mail(
        "deposit",
        "nl",
        mail_context(advice_dossier(), extra={"deadline": "2026-07-15"}),
    )

    assert "Het exacte bedrag staat in het e-loket bij uw aanvraag." in mail.text


@pytest.mark.parametrize("language", ["nl", "fr", "en"])
@pytest.mark.parametrize("amounts", [True, False], ids=["amounts", "no amounts"])
def test_each_question_of_the_text_mail_starts_its_own_line(language, amounts):
    """How much, where to and by when: three list items, each on its own line."""
    extra = AMOUNTS if amounts else {"deadline": "2026-07-15"}
    mail = render_mail("deposit", language, mail_context(advice_dossier(), extra=extra))

    items = [line for line in mail.text.splitlines() if line.startswith("- ")]
    assert len(items) == 3, mail.text
    assert "- " not in "".join(line[2:] for line in items)
