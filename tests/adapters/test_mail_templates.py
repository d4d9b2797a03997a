"""Mail and document templates: every mail renders, reminders say so, Dutch first."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.templates import (
    MAIL_TEMPLATES,
    TEMPLATES_DIR,
    UnknownTemplate,
    mail_context,
    mail_language,
    render_document,
    render_mail,
)
from tests.factories import advice_dossier, training_dossier
from workflows.messages import Participant

REMINDER = {"nl": "Herinnering: ", "fr": "Rappel : ", "en": "Reminder: "}
LANGUAGES = [
    language
    for language in ("nl", "fr", "en")
    if (TEMPLATES_DIR / language / "mail" / "onboarding.txt").is_file()
]
SIGN_LINKS = {
    "terms": {"client": "http://localhost:8000/sign/terms-token"},
    "attendance": {"An Peeters": "http://localhost:8000/sign/attendance-token"},
    "satisfaction": {"client": "http://localhost:8000/sign/satisfaction-token"},
}


def context(template: str, dossier_kind: str, sequence: int) -> dict:
    dossier = training_dossier() if dossier_kind == "training" else advice_dossier()
    return mail_context(
        dossier,
        sequence=sequence,
        sign_links=SIGN_LINKS.get(template, {}),
        extra={"deadline": "2027-01-07"},
    )


def test_the_twelve_mail_templates() -> None:
    """These are the mails a dossier can send."""
    assert MAIL_TEMPLATES == (
        "onboarding",
        "application",
        "terms",
        "deposit",
        "payment_order",
        "attendance",
        "satisfaction",
        "certificate",
        "final_report_request",
        "final_report",
        "lapsed",
        "cancelled",
    )


def test_dutch_is_complete() -> None:
    """Every mail template exists in Dutch, as text and as HTML."""
    for name in MAIL_TEMPLATES:
        assert (TEMPLATES_DIR / "nl" / "mail" / f"{name}.txt").is_file(), name
        assert (TEMPLATES_DIR / "nl" / "mail" / f"{name}.html").is_file(), name


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["training", "advice"])
@pytest.mark.parametrize("sequence", [0, 2])
@pytest.mark.parametrize("template", MAIL_TEMPLATES)
def test_every_mail_renders(
    template: str, kind: str, sequence: int, language: str
) -> None:
    """Each mail renders a subject, a text and an HTML body; reminders say so."""
    mail = render_mail(template, language, context(template, kind, sequence))

    assert mail.subject.strip() == mail.subject
    assert "\n" not in mail.subject
    assert mail.subject.startswith(REMINDER[language]) == (sequence > 0)
    assert len(mail.subject) > len(REMINDER[language]) + 10
    assert not mail.text.startswith("Subject:")
    assert f'<html lang="{language}">' in mail.html
    title = re.search(r"<title>(.*)</title>", mail.html)
    assert title is not None and html.unescape(title.group(1)) == mail.subject
    for body in (mail.text, mail.html):
        assert "{{" not in body and "{%" not in body
        assert "None" not in body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", ["terms", "attendance", "satisfaction"])
def test_signing_mails_carry_their_links(template: str, language: str) -> None:
    """Every sign link given is in the text and in the HTML."""
    mail = render_mail(template, language, context(template, "training", 0))

    for url in SIGN_LINKS[template].values():
        assert url in mail.text
        assert f'href="{url}"' in mail.html


def test_application_mail_names_the_deadline_dv_number_and_amount() -> None:
    """The Dutch application mail gives the date, DV number and amount to enter."""
    mail = render_mail(
        "application", "nl", mail_context(training_dossier(), sequence=0)
    )

    assert mail.subject == (
        "KMO-portefeuille: dien uw steunaanvraag in uiterlijk op 22 december 2026"
    )
    assert "DV.O214567" in mail.text
    assert "€\u00a0395,00" in mail.text
    assert "8 december 2026" in mail.text
    assert "www.kmo-portefeuille.be" in mail.text


def test_application_deadline_from_the_workflow_wins() -> None:
    """A deadline passed in `extra` replaces the computed one."""
    mail = render_mail(
        "application",
        "nl",
        mail_context(training_dossier(), extra={"deadline": "2026-12-23"}),
    )

    assert mail.subject.endswith("uiterlijk op 23 december 2026")


def test_reminder_subject_in_dutch() -> None:
    """The second reminder of the terms mail is prefixed with 'Herinnering: '."""
    mail = render_mail(
        "terms",
        "nl",
        mail_context(training_dossier(), sequence=2, sign_links=SIGN_LINKS["terms"]),
    )

    assert mail.subject == (
        "Herinnering: KMO-portefeuille: uw rechten en plichten, ter ondertekening"
    )


def test_deposit_mail_names_pluxee_and_vat() -> None:
    """The deposit mail says Pluxee, the 30 days and that VAT is not paid there."""
    mail = render_mail(
        "deposit",
        "nl",
        mail_context(advice_dossier(), extra={"deadline": "2026-07-15"}),
    )

    assert "Pluxee (vroeger Sodexo)" in mail.text
    assert "30 kalenderdagen" in mail.text
    assert "15 juli 2026" in mail.text
    assert "btw" in mail.text
    assert "€\u00a06.800,00" in mail.text


def test_payment_order_mail_names_the_invoice_number() -> None:
    """The payment order mail tells which invoice to give the order for."""
    mail = render_mail("payment_order", "nl", mail_context(advice_dossier()))

    assert mail.subject == (
        "KMO-portefeuille: geef nu de betaalopdracht voor factuur CVA/26/031"
    )
    assert "Cyberveilig Advies CommV (DV.A109876)" in mail.text


def test_final_report_request_greets_the_provider() -> None:
    """The request for the final report is addressed to the provider."""
    mail = render_mail("final_report_request", "nl", mail_context(advice_dossier()))

    assert mail.text.startswith("Beste Cyberveilig Advies CommV,")


def test_html_escapes_names() -> None:
    """Names with markup characters are escaped in HTML and kept in text."""
    dossier = training_dossier()
    dossier.provider.name = "Leren & <Groeien> BV"

    mail = render_mail("onboarding", "nl", mail_context(dossier))

    assert "Leren &amp; &lt;Groeien&gt; BV" in mail.html
    assert "<Groeien>" not in mail.html
    assert "Leren & <Groeien> BV" in mail.text


def test_unknown_language_falls_back_to_dutch() -> None:
    """A client language without templates gets the Dutch mail."""
    mail = render_mail("onboarding", "de", mail_context(training_dossier()))

    assert mail.subject == (
        "KMO-portefeuille: registreer eerst uw onderneming op het e-loket"
    )
    assert mail_language("onboarding", "de") == "nl"


def test_missing_translation_falls_back_to_dutch(tmp_path: Path) -> None:
    """A mail that exists only in Dutch is sent in Dutch to a French client."""
    (tmp_path / "nl" / "mail").mkdir(parents=True)
    (tmp_path / "fr" / "mail").mkdir(parents=True)
    (tmp_path / "nl" / "mail" / "hello.txt").write_text(
        "Subject: Hallo {{ client.name }}\n\nDag {{ amount|money }}\n"
    )
    (tmp_path / "nl" / "mail" / "hello.html").write_text("<p>{{ subject }}</p>\n")

    mail = render_mail(
        "hello",
        "fr",
        {**mail_context(training_dossier()), "amount": Decimal("75")},
        root=tmp_path,
    )

    assert mail.subject == "Hallo Bakkerij Peeters BV"
    assert mail.text == "Dag €\u00a075,00\n"  # babel keeps the sign and amount together
    assert mail.html == "<p>Hallo Bakkerij Peeters BV</p>\n"


def test_unknown_template_is_an_error() -> None:
    """A template name that exists in no language raises UnknownTemplate."""
    with pytest.raises(UnknownTemplate):
        render_mail("welcome", "nl", mail_context(training_dossier()))


def test_template_names_cannot_climb_out() -> None:
    """A template name with a path in it is refused."""
    with pytest.raises(UnknownTemplate):
        render_mail("../nl/mail/terms", "nl", mail_context(training_dossier()))


@pytest.mark.parametrize("language", LANGUAGES)
def test_certificate_document_names_participant_provider_and_dates(
    language: str,
) -> None:
    """The certificate shows the participant, provider with DV number and the date."""
    dossier = training_dossier()

    html = render_document(
        "certificate.html",
        language,
        {
            "dossier": dossier,
            "participant": Participant("An Peeters"),
            "provider": dossier.provider,
            "client": dossier.client,
            "training_name": "Excel voor gevorderden",
            "session_dates": dossier.session_dates,
            "issued_on": dossier.end_date,
            "retain_until": None,
        },
    )

    assert "An Peeters" in html
    assert "Leerhuis Schelde BV" in html
    assert "DV.O214567" in html
    assert "Excel voor gevorderden" in html
    assert {"nl": "8 december 2026", "fr": "8 décembre 2026", "en": "8 December 2026"}[
        language
    ] in html
