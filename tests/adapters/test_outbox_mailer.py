"""Composing a dossier's mail and writing it to the outbox as an .eml file."""

from __future__ import annotations

import email
import hashlib
import itertools
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader, DateHeader
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest

from adapters.mail import (
    MailAttachment,
    OutboxMailer,
    as_bytes,
    compose,
    container_address,
    dossier_address,
    message_id_for,
)
from kmo.addresses import InvalidAddress

KEY = "dossier-0412345614-ls-2026-0141/terms/0"
MESSAGE_ID = "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>"
PDF = b"%PDF-1.7 certificaat"


def terms_mail(**changes) -> EmailMessage:
    arguments: dict[str, Any] = {
        "key": KEY,
        "mail_domain": "kmo-dossier.example",
        "provider_id": "0412345614",
        "provider_name": "Leerhuis Schelde BV",
        "dossier_id": "0412345614-ls-2026-0141",
        "to": ["an.peeters@bakkerij-peeters.example"],
        "subject": "KMO-portefeuille: uw rechten en plichten, ter ondertekening",
        "text": "Beste An Peeters,\n\nOnderteken de voorwaarden.\n",
        "html": "<p>Beste An Peeters,</p><p>Onderteken de voorwaarden.</p>",
        "date": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        "attachments": [
            MailAttachment("certificaat An Peeters.pdf", PDF, "application/pdf")
        ],
    }
    arguments.update(changes)
    return compose(**arguments)


def read(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_addresses() -> None:
    """Container and per-dossier reply addresses live under containers.<domain>."""
    assert (
        container_address("0412345614", "kmo-dossier.example")
        == "0412345614@containers.kmo-dossier.example"
    )
    assert (
        dossier_address("0412345614-ls-2026-0141", "kmo-dossier.example")
        == "dossier+0412345614-ls-2026-0141@containers.kmo-dossier.example"
    )


def test_odd_characters_in_a_dossier_id_do_not_break_the_address() -> None:
    """Slashes and spaces become dashes in the reply address."""
    assert (
        dossier_address("0712345036-CVA/26 031", "kmo-dossier.example")
        == "dossier+0712345036-CVA-26-031@containers.kmo-dossier.example"
    )


def test_message_id_derives_from_the_key() -> None:
    """The Message-ID is the first 32 hex of SHA-256(key) at the mail domain."""
    assert message_id_for(KEY, "kmo-dossier.example") == MESSAGE_ID


def test_outbox_file_is_a_parseable_mail(tmp_path: Path) -> None:
    """The .eml has the headers, both bodies and the attachment, as composed."""
    mailer = OutboxMailer(tmp_path / "outbox")

    mailer.send(terms_mail(), as_bytes(terms_mail()))

    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [
        "0f0285d7ec7d8ae339235d9c1efe69e7_kmo-dossier.example.eml"
    ]
    message = read(files[0])
    assert message["From"] == (
        "Leerhuis Schelde BV <0412345614@containers.kmo-dossier.example>"
    )
    assert message["Reply-To"] == (
        "dossier+0412345614-ls-2026-0141@containers.kmo-dossier.example"
    )
    assert message["To"] == "an.peeters@bakkerij-peeters.example"
    assert message["Subject"] == (
        "KMO-portefeuille: uw rechten en plichten, ter ondertekening"
    )
    assert message["Message-ID"] == MESSAGE_ID
    assert message["Date"] == "Tue, 01 Dec 2026 09:00:00 +0000"
    assert message["X-Dossier-Id"] == "0412345614-ls-2026-0141"

    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content().splitlines() == [
        "Beste An Peeters,",
        "",
        "Onderteken de voorwaarden.",
    ]
    assert "<p>Onderteken de voorwaarden.</p>" in html.get_content()

    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["certificaat An Peeters.pdf"]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content() == PDF


def test_outbox_file_holds_the_bytes_handed_over(tmp_path: Path) -> None:
    """The .eml is the serialised mail the mailer is given, as archived."""
    message = terms_mail()
    data = as_bytes(message)

    OutboxMailer(tmp_path / "outbox").send(message, data)

    [path] = (tmp_path / "outbox").iterdir()
    assert path.read_bytes() == data


def test_sending_the_same_mail_twice_writes_one_file(tmp_path: Path) -> None:
    """A retried send with the same Message-ID leaves the first file as it was."""
    mailer = OutboxMailer(tmp_path / "outbox")
    mailer.send(terms_mail(), as_bytes(terms_mail()))
    path = next((tmp_path / "outbox").iterdir())
    first = path.read_bytes()

    changed = terms_mail(subject="changed on retry")
    mailer.send(changed, as_bytes(changed))

    assert list((tmp_path / "outbox").iterdir()) == [path]
    assert path.read_bytes() == first


def test_composing_is_deterministic() -> None:
    """The same key, date and content give byte-identical mails."""
    assert as_bytes(terms_mail()) == as_bytes(terms_mail())


@pytest.mark.parametrize(
    ("changes", "sha256"),
    [
        ({}, "2425bb1cf4006b9264843e8e5110f9211603b99ff082e185d1fc979e3a7d2a82"),
        (
            {
                "provider_name": 'Formation Sécurité & Co. "Élan" SRL',
                "to": [
                    "an.peeters@bakkerij-peeters.example",
                    "jan.jansens@bakkerij-peeters.example",
                ],
                "subject": (
                    "Rappel : portefeuille PME — vos droits et obligations, à "
                    "signer avant la date limite du 15 décembre"
                ),
                "text": "Madame,\n\nVeuillez signer les conditions générales. é à ü\n"
                * 3,
                "html": "<p>Veuillez signer les conditions générales. é à ü</p>\n" * 3,
                "headers": {"X-Dossier-Template": "terms"},
            },
            "1e93d61fb6b008a5db2c59edd2a8e8c9056af01045e5001e63d9b2a10ff8c780",
        ),
    ],
)
def test_composed_bytes_stay_as_they_were(changes: dict[str, Any], sha256: str) -> None:
    """A mail composes to the bytes pinned here (SHA-256, Python 3.11.7).

    A send retried across a deployment must archive the same bytes, not a
    second, different copy; so must one retried across a Python upgrade, which
    this test then checks too. The first mail's bytes are those of 27b5543;
    the second, with quoted and encoded headers, changed once on purpose, when
    subjects beyond ASCII came to be encoded whole (no space lost).
    """
    assert hashlib.sha256(as_bytes(terms_mail(**changes))).hexdigest() == sha256


FIRST_NAMES = ["Jérôme", "An", "Élise", "Zoë", "François", "Anaïs", "Jan"]
LAST_NAMES = ["Peeters", "De Smet-Vandenbroucke", "Müller", "Van den Eeckhout"]
PROVIDERS = [
    "Académie Européenne de Formation SRL",
    "Leerhuis Schelde BV",
    "Opleidingscentrum Noord-Brabançon",
    "École Supérieure des Métiers de l'Artisanat et du Commerce SA",
]


def test_subjects_and_senders_read_back_as_written() -> None:
    """RFC 2047 decoding, as a mail client does it, gives each subject back.

    Folded between two encoded-words, some subjects lost a space ("opleiding
    vanAcadémie"); 10 of 200 such certificate subjects did before the subject
    was encoded whole.
    """
    for first, last, provider in itertools.product(FIRST_NAMES, LAST_NAMES, PROVIDERS):
        subject = f"Certificaat van {first} {last}: opleiding van {provider}"
        data = as_bytes(terms_mail(subject=subject, provider_name=provider))
        read = BytesParser(policy=policy.compat32).parsebytes(data)

        decoded = str(make_header(decode_header(read["Subject"])))
        if not subject.isascii():  # ASCII may fold right after "Subject:"
            assert decoded == subject
        assert decoded.strip() == subject
        assert (
            BytesParser(policy=policy.default).parsebytes(data)["Subject"].strip()
            == subject
        )
        sender = str(make_header(decode_header(read["From"])))
        assert parseaddr(sender)[0] == provider


def test_a_line_break_in_a_subject_with_accents_is_refused() -> None:
    """No header injection through the encoded path either."""
    with pytest.raises(ValueError):
        terms_mail(subject="Hallo Zoë\r\nBcc: everyone@example.com")


def test_lines_end_in_crlf() -> None:
    """The mail is serialised for SMTP: every line ends in CRLF."""
    data = as_bytes(terms_mail())

    assert b"\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_several_recipients() -> None:
    """Every address of the list is a recipient."""
    message = terms_mail(
        to=["an.peeters@bakkerij-peeters.example", "boekhouding@peeters.example"]
    )

    assert message["To"] == (
        "an.peeters@bakkerij-peeters.example, boekhouding@peeters.example"
    )


@pytest.mark.parametrize(
    "address",
    ["an.peeters", "an@", "An <an@x.example>", "a@b.example, c@d.example", ""],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    """Anything but one plain address raises InvalidAddress."""
    with pytest.raises(InvalidAddress):
        terms_mail(to=[address])


def test_a_domain_with_accents_is_mailed_in_its_ascii_form() -> None:
    """The To header holds the IDNA domain, no encoded-word inside an address."""
    message = terms_mail(to=["an@bakkerij-peetérs.be"])

    assert message["To"] == "an@xn--bakkerij-peetrs-nnb.be"
    assert b"=?utf-8?" not in as_bytes(message).split(b"\r\nTo: ")[1].split(b"\r\n")[0]


def test_letters_with_accents_before_the_at_are_refused() -> None:
    """Such an address needs SMTPUTF8, which we do not send: InvalidAddress."""
    with pytest.raises(InvalidAddress, match="before the @-sign"):
        terms_mail(to=["jérôme@bakkerij-peeters.example"])


def test_header_injection_is_impossible() -> None:
    """A newline in a subject does not add a header."""
    with pytest.raises(ValueError):
        terms_mail(subject="Hallo\r\nBcc: everyone@example.com")


def test_headers_keep_their_kinds() -> None:
    """Address and date headers parse as such; each kind's class is made once."""
    message, again = terms_mail(), terms_mail()

    assert isinstance(message["To"], AddressHeader)
    assert isinstance(message["Date"], DateHeader)
    assert type(message["To"]) is type(again["To"])
