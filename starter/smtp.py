"""The local SMTP listener: mail in on premises and under `dossier dev`.

An aiosmtpd server on 127.0.0.1 only (never a public interface: it does no
authentication) that accepts mail for the container domain and hands each
mail to `adapters.inbound.receive_mail`, the same core as SendGrid's Inbound
Parse webhook. Recipients at other domains are refused, so it relays nothing.
The server runs in the caller's event loop, so intake's Temporal client works.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from adapters.inbound import MailTooLarge, receive_mail

log = structlog.get_logger(__name__)

LOOPBACK = "127.0.0.1"


class InboundHandler:
    """aiosmtpd handler: take mail for our container domain into the archive."""

    def __init__(
        self,
        *,
        archive: Any,
        session_factory: Any,
        intake: Any,
        mail_domain: str,
        max_bytes: int,
    ) -> None:
        self.archive = archive
        self.session_factory = session_factory
        self.intake = intake
        self.mail_domain = mail_domain
        self.max_bytes = max_bytes

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain != f"containers.{self.mail_domain}".lower():
            return "550 5.7.1 not a container address; this server relays nothing"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode()
        try:
            await receive_mail(
                data,
                recipients=list(envelope.rcpt_tos),
                archive=self.archive,
                session_factory=self.session_factory,
                intake=self.intake,
                mail_domain=self.mail_domain,
                max_bytes=self.max_bytes,
            )
        except MailTooLarge:
            return "552 5.3.4 message too large"
        except Exception:  # the sender keeps the mail and tries again later
            log.exception("smtp.receive_failed")
            return "451 4.3.0 could not store the mail; try again later"
        return "250 Message accepted"


async def start_smtp(handler: InboundHandler, port: int) -> asyncio.AbstractServer:
    """Listen on 127.0.0.1:`port` in the running loop; the caller closes it."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="localhost",
            data_size_limit=handler.max_bytes,
            enable_SMTPUTF8=True,
        ),
        host=LOOPBACK,
        port=port,
    )
    log.info("smtp.started", port=port)
    return server


async def run_smtp(settings: Any, port: int) -> None:
    """Run the listener with the real archive, records and Temporal until a signal."""
    from adapters.records import make_engine, make_session_factory
    from adapters.s3archive import make_archive
    from starter.client import connect
    from starter.intake import IntakeService

    sessions = make_session_factory(make_engine(settings.database_url))
    archive = make_archive(settings)
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    handler = InboundHandler(
        archive=archive,
        session_factory=sessions,
        intake=IntakeService(settings, client, sessions, archive),
        mail_domain=settings.mail_domain,
        max_bytes=settings.inbound_max_bytes,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for each in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(each, stop.set)
    server = await start_smtp(handler, port)
    async with server:
        await stop.wait()
    log.info("smtp.stopped")
