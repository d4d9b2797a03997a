"""The staff outbox page: mails written by the real OutboxMailer, shown safely."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from adapters.mail import OutboxMailer, as_bytes
from tests.web.api_users import OUTSIDE
from web.app import create_app
from web.outbox import linkify
from web.staff import STAFF_TOKEN_ENV, STAFF_TOKEN_HEADER

SIGN_URL = "http://localhost:8000/sign/abc123?lang=nl&x=1"


@pytest.fixture
async def pages(settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app without its lifespan: the outbox pages need only the settings."""
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as client:
        yield client


@pytest.fixture
def mail_in_outbox(settings) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = "<terms-1@kmo-dossier.example>"
    message["From"] = "dossiers@kmo-dossier.example"
    message["To"] = "an.peeters@bakkerij-peeters.example"
    message["Subject"] = "Voorwaarden ondertekenen"
    message["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    message.set_content(f"Teken hier <script>alert(1)</script>: {SIGN_URL}.\n")
    OutboxMailer(settings.outbox_dir).send(message, as_bytes(message))
    return message


def test_linkify_escapes_text_and_links_only_web_addresses():
    """Markup in the text is escaped; an http(s) URL becomes a link, minus the dot."""
    html = linkify("<b>Sign</b> https://x.example/s?a=1&b=2. javascript:alert(1)")

    assert str(html) == (
        "&lt;b&gt;Sign&lt;/b&gt; "
        '<a href="https://x.example/s?a=1&amp;b=2" rel="noopener noreferrer">'
        "https://x.example/s?a=1&amp;b=2</a>. javascript:alert(1)"
    )


def test_linkify_cannot_be_broken_out_of_by_a_quote_in_the_url():
    """A quote ends the URL, so no attribute can be injected into the link."""
    html = linkify('https://x.example/"onmouseover="alert(1)')

    assert str(html) == (
        '<a href="https://x.example/" rel="noopener noreferrer">https://x.example/</a>'
        "&#34;onmouseover=&#34;alert(1)"
    )


async def test_outbox_lists_each_mail_with_subject_and_recipient(pages, mail_in_outbox):
    """The list shows the mail's subject, linked to its page, and its recipient."""
    response = await pages.get("/outbox")

    assert response.status_code == 200
    assert "an.peeters@bakkerij-peeters.example" in response.text
    assert (
        '<a href="http://testserver/outbox/terms-1_kmo-dossier.example.eml">'
        "Voorwaarden ondertekenen</a>"
    ) in response.text


async def test_mail_page_shows_the_text_escaped_with_clickable_links(
    pages, mail_in_outbox
):
    """A mail's page escapes its text and makes its sign link clickable."""
    response = await pages.get("/outbox/terms-1_kmo-dossier.example.eml")

    assert response.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "<script>alert" not in response.text
    assert (
        '<a href="http://localhost:8000/sign/abc123?lang=nl&amp;x=1" '
        'rel="noopener noreferrer">'
    ) in response.text


async def test_mail_page_works_with_a_relative_outbox_folder(
    mail_in_outbox, settings, monkeypatch
):
    """With the development default `.data/outbox` (relative) a mail still opens."""
    monkeypatch.chdir(settings.data_dir)
    relative = settings.model_copy(update={"outbox_dir": Path("outbox")})
    transport = httpx.ASGITransport(app=create_app(relative))

    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/outbox/terms-1_kmo-dossier.example.eml")

    assert response.status_code == 200
    assert "Voorwaarden ondertekenen" in response.text


async def test_mail_page_refuses_paths_outside_the_outbox(pages, settings):
    """A path that climbs out of the outbox folder answers 404."""
    secret = settings.data_dir / "secret.eml"
    secret.write_text("Subject: not yours\n\nno\n")

    response = await pages.get("/outbox/..%2Fsecret.eml")

    assert response.status_code == 404
    assert "not yours" not in response.text


async def test_empty_outbox_says_so(pages):
    """With no mails yet the page says so instead of an empty table."""
    response = await pages.get("/outbox")

    assert response.status_code == 200
    assert "No mails yet." in response.text


async def test_outbox_is_staff_only(settings, mail_in_outbox, monkeypatch):
    """From another machine: 403 without the staff token, 200 with it."""
    monkeypatch.setenv(STAFF_TOKEN_ENV, "staff-token-for-the-test")
    transport = httpx.ASGITransport(app=create_app(settings), client=OUTSIDE)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        anonymous = [
            await client.get("/outbox"),
            await client.get("/outbox/terms-1_kmo-dossier.example.eml"),
        ]
        wrong = await client.get("/outbox", headers={STAFF_TOKEN_HEADER: "guess"})
        staff = await client.get(
            "/outbox", headers={STAFF_TOKEN_HEADER: "staff-token-for-the-test"}
        )

    assert [response.status_code for response in anonymous] == [403, 403]
    assert "Voorwaarden" not in anonymous[1].text
    assert wrong.status_code == 403
    assert staff.status_code == 200
    assert "Voorwaarden ondertekenen" in staff.text


async def test_outbox_is_not_mounted_when_mail_goes_to_sendgrid(settings):
    """With SendGrid there is no outbox, and no page pretending to be one."""
    sendgrid = settings.model_copy(update={"mail_backend": "sendgrid"})
    transport = httpx.ASGITransport(app=create_app(sendgrid))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/outbox")

    assert response.status_code == 404


async def test_a_folded_subject_is_shown_without_its_fold(pages, settings):
    """A subject too long for one header line reads as one line, no leading space."""
    subject = "KMO-portefeuille: dien uw steunaanvraag in uiterlijk op 22 december 2026"
    message = EmailMessage()
    message["To"] = "an.peeters@bakkerij-peeters.example"
    message["Subject"] = subject
    message["Message-ID"] = "<folded-1@kmo-dossier.example>"
    message.set_content("Beste An")
    OutboxMailer(settings.outbox_dir).send(message, as_bytes(message))

    listing = (await pages.get("/outbox")).text

    assert f">{subject}</a>" in listing
