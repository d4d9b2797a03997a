"""The local SMTP listener on a free loopback port, with a real archive and SQLite."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from adapters.archive import LocalArchive
from adapters.records import ArchiveItem, Provider
from starter.smtp import InboundHandler, start_smtp

CONTAINER = "0412345614@containers.kmo-dossier.example"


@pytest.fixture
async def listener(settings, session_factory, free_port):
    """The listener on 127.0.0.1:`free_port`, for a known provider's container."""
    with session_factory() as session, session.begin():
        session.add(
            Provider(
                provider_id="0412345614",
                name="Opleidingen Peeters",
                dv_numbers=[],
                container_email=CONTAINER,
            )
        )
    handler = InboundHandler(
        archive=LocalArchive(settings.archive_dir),
        session_factory=session_factory,
        intake=None,
        mail_domain="kmo-dossier.example",
        max_bytes=1024 * 1024,
    )
    server = await start_smtp(handler, free_port)
    async with server:
        yield free_port


def send(port: int, message: EmailMessage, to: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message, to_addrs=to)


def offerte() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "an@bakkerij.example"
    message["To"] = CONTAINER
    message["Subject"] = "Offerte opleiding"
    message.set_content("In bijlage onze offerte.")
    message.add_attachment(
        b"%PDF-1.4 offerte", "application", "pdf", filename="offerte.pdf"
    )
    return message


async def test_mail_sent_over_smtp_is_archived_in_the_container(
    listener, session_factory
):
    """A mail sent with smtplib to the container lands in its archive folder."""
    await asyncio.to_thread(send, listener, offerte(), [CONTAINER])

    with session_factory() as session:
        rows = session.execute(
            select(ArchiveItem.container, ArchiveItem.name).order_by(ArchiveItem.name)
        ).all()
    assert rows == [("0412345614", "01-offerte.pdf"), ("0412345614", "mail.eml")]


async def test_recipient_at_another_domain_is_refused(listener):
    """The listener relays nothing: a recipient elsewhere gets 550."""
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(send, listener, offerte(), ["x@elsewhere.example"])

    [(code, _)] = refused.value.recipients.values()
    assert code == 550
