"""Web hardening: security headers, rate limits, and logs without personal data."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import OutboxMailer
from starter.intake import UploadDetails, prepare
from web.app import create_app
from workflows.messages import Document, MailInput, SignLinksInput

INVOICE = Path(__file__).resolve().parents[1] / "fixtures" / "invoices"
CLIENT_EMAIL = "an.peeters@bakkerij-peeters.example"
PERSONAL = (CLIENT_EMAIL, "An Peeters", "Bakkerij Peeters", "+32 15 00 00 01")


@pytest.fixture
async def web(settings, session_factory) -> AsyncIterator[httpx.AsyncClient]:
    """The app without Temporal: enough for headers and limits."""
    app = create_app(
        settings,
        temporal_client=object(),  # never called by these requests
        session_factory=session_factory,
        archive=LocalArchive(settings.archive_dir),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


@pytest.mark.parametrize("path", ["/healthz", "/outbox", "/sign/not-a-token"])
async def test_every_answer_carries_the_security_headers(web, path):
    """CSP without third parties, no sniffing, no framing, no referrer."""
    response = await web.get(path)

    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "http" not in policy  # no third-party origin anywhere
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_signing_pages_are_never_cached(web):
    """A page reached by a signing link is not kept by browsers or proxies."""
    response = await web.get("/sign/not-a-token")

    assert "no-store" in response.headers["cache-control"]


async def test_the_eleventh_signing_post_in_a_minute_is_refused(web):
    """Guessing tokens is slowed down: ten tries a minute, then 429."""
    answers = [
        (await web.post("/sign/guess", data={"name": "x"})).status_code
        for _ in range(11)
    ]

    assert 429 not in answers[:10]
    assert answers[10] == 429


async def test_intake_and_mail_logs_carry_ids_but_no_personal_data(
    settings, session_factory
):
    """Events of intake and of a sent mail hold no email, name, phone or token."""
    data = (INVOICE / "training-open-1p.xml").read_bytes()
    activities = DossierActivities(
        settings=settings,
        session_factory=session_factory,
        archive=LocalArchive(settings.archive_dir),
        mailer=OutboxMailer(settings.outbox_dir),
    )
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        workflow_id="dossier-log-test",
        workflow_run_id="run-1",
        scheduled_time=datetime(2026, 12, 9, 8, tzinfo=UTC),
    )

    with capture_logs() as events:
        dossier = prepare(data, "x.xml", UploadDetails()).dossier
        links = await env.run(
            activities.create_sign_links,
            SignLinksInput(dossier, Document.TERMS, ["client"]),
        )
        await env.run(
            activities.send_mail,
            MailInput(
                key="dossier-log-test/terms/0",
                dossier=dossier,
                template="terms",
                to=[CLIENT_EMAIL],
                sign_links=links.links,
            ),
        )

    text = repr(events)
    assert any(e["event"] == "mail.sent" for e in events)
    assert all("dossier_id" in e for e in events if e["event"].startswith("mail."))
    token = links.links["client"].rsplit("/", 1)[1]
    for secret in (*PERSONAL, token):
        assert secret not in text
