"""The SendGrid mailer: the real `sendgrid` client against a local v3 endpoint.

The endpoint, on 127.0.0.1, records every POST /v3/mail/send body and answers
with the statuses the test scripts (202 once the script runs out).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import MailAttachment, as_bytes, compose
from adapters.records import Message
from adapters.sendgrid import MailTemporarilyUnavailable, SendGridMailer
from adapters.settings import Settings
from tests.factories import training_dossier
from workflows.messages import MailInput

API_KEY = "SG.test-key"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WORKFLOW_ID = "dossier-0412345614-ls-2026-0141"
TERMS_KEY = f"{WORKFLOW_ID}/terms/0"
TERMS_MESSAGE_ID = "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>"
CLIENT_EMAIL = "an.peeters@bakkerij-peeters.example"
REJECTION = {
    "errors": [
        {
            "message": "The from address does not match a verified Sender Identity.",
            "field": "from",
            "help": None,
        }
    ]
}


@dataclasses.dataclass
class Post:
    path: str
    authorization: str
    payload: dict[str, Any]
    status: int


class FakeSendGrid:
    """What the local endpoint received, and the statuses it is still to answer."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.retry_after: str | None = None
        self.posts: list[Post] = []
        self.host = ""

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [post.payload for post in self.posts if post.status == 202]


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    """A v3 mail endpoint on 127.0.0.1 that records payloads and answers as scripted."""
    fake = FakeSendGrid()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(length))
            with lock:
                status = fake.statuses.pop(0) if fake.statuses else 202
                fake.posts.append(
                    Post(self.path, self.headers["Authorization"], payload, status)
                )
            body = b"" if status == 202 else json.dumps(REJECTION).encode()
            self.send_response(status)
            if fake.retry_after and status == 429:
                self.send_header("Retry-After", fake.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test output stays free of request lines

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.host = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def terms_message() -> EmailMessage:
    return compose(
        key=TERMS_KEY,
        mail_domain="kmo-dossier.example",
        provider_id="0412345614",
        provider_name="Leerhuis Schelde BV",
        dossier_id="0412345614-ls-2026-0141",
        to=[CLIENT_EMAIL],
        subject="Uw rechten en plichten",
        text="Teken hier.\n",
        html="<p>Teken hier.</p>\n",
        date=NOW,
        attachments=[
            MailAttachment("voorwaarden.pdf", b"%PDF-1.7 terms", "application/pdf")
        ],
        headers={"X-Dossier-Template": "terms"},
    )


def send_terms(mailer: SendGridMailer) -> None:
    """Send `terms_message()` as the activity does: with its serialised bytes."""
    message = terms_message()
    mailer.send(message, as_bytes(message))


# --- the payload -----------------------------------------------------------


def test_payload_carries_the_composed_mail(sendgrid) -> None:
    """One POST to /v3/mail/send with sender, reply address, parts, args, sandbox."""
    send_terms(SendGridMailer(API_KEY, host=sendgrid.host, sandbox=True))

    [post] = sendgrid.posts
    assert post.path == "/v3/mail/send"
    assert post.authorization == "Bearer SG.test-key"
    assert post.payload == {
        "from": {
            "name": "Leerhuis Schelde BV",
            "email": "0412345614@containers.kmo-dossier.example",
        },
        "reply_to": {
            "email": "dossier+0412345614-ls-2026-0141@containers.kmo-dossier.example"
        },
        "personalizations": [
            {"to": [{"email": "an.peeters@bakkerij-peeters.example"}]}
        ],
        "subject": "Uw rechten en plichten",
        "content": [
            {"type": "text/plain", "value": "Teken hier.\n"},
            {"type": "text/html", "value": "<p>Teken hier.</p>\n"},
        ],
        "attachments": [
            {
                "content": "JVBERi0xLjcgdGVybXM=",
                "type": "application/pdf",
                "filename": "voorwaarden.pdf",
                "disposition": "attachment",
            }
        ],
        "headers": {
            "Message-ID": "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>",
            "X-Dossier-Id": "0412345614-ls-2026-0141",
            "X-Dossier-Template": "terms",
        },
        "custom_args": {
            "dossier_id": "0412345614-ls-2026-0141",
            "message_id": "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>",
        },
        "mail_settings": {"sandbox_mode": {"enable": True}},
    }


def test_payload_outside_sandbox_has_no_mail_settings(sendgrid) -> None:
    """Without sandbox the payload asks for no mail settings: SendGrid delivers."""
    send_terms(SendGridMailer(API_KEY, host=sendgrid.host))

    [post] = sendgrid.posts
    assert "mail_settings" not in post.payload


def test_accepted_mail_is_known_to_the_mailer_that_sent_it(sendgrid) -> None:
    """After a 202 the mailer knows the Message-ID; a new mailer cannot tell."""
    mailer = SendGridMailer(API_KEY, host=sendgrid.host)

    before = mailer.already_accepted(terms_message())
    send_terms(mailer)

    assert before is False
    assert mailer.already_accepted(terms_message()) is True
    assert (
        SendGridMailer(API_KEY, host=sendgrid.host).already_accepted(terms_message())
        is False
    )


def test_refused_mail_is_not_known_as_accepted(sendgrid) -> None:
    """A mail SendGrid answered 500 to is not counted as accepted."""
    sendgrid.answer(500)
    mailer = SendGridMailer(API_KEY, host=sendgrid.host)

    with pytest.raises(MailTemporarilyUnavailable):
        send_terms(mailer)

    assert mailer.already_accepted(terms_message()) is False


# --- errors ----------------------------------------------------------------


def test_rejection_is_not_retried(sendgrid) -> None:
    """A 400 fails for good, naming the mail and the field but no address."""
    sendgrid.answer(400)

    with pytest.raises(ApplicationError) as raised:
        send_terms(SendGridMailer(API_KEY, host=sendgrid.host))

    assert raised.value.non_retryable is True
    assert raised.value.type == "MailRejected"
    assert raised.value.message == (
        "SendGrid rejected mail "
        "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example> with HTTP 400 "
        "(fields: from); check the API key, the verified sender domain and the "
        "mail's fields, then resend it from the staff page"
    )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_retried(sendgrid, status: int) -> None:
    """A 5xx is a retryable MailTemporarilyUnavailable."""
    sendgrid.answer(status)

    with pytest.raises(MailTemporarilyUnavailable) as raised:
        send_terms(SendGridMailer(API_KEY, host=sendgrid.host))

    assert raised.value.non_retryable is False
    assert raised.value.type == "MailTemporarilyUnavailable"


def test_throttling_is_retried_after_the_asked_delay(sendgrid) -> None:
    """A 429 is retried, no sooner than its Retry-After."""
    sendgrid.answer(429)
    sendgrid.retry_after = "60"

    with pytest.raises(MailTemporarilyUnavailable) as raised:
        send_terms(SendGridMailer(API_KEY, host=sendgrid.host))

    assert raised.value.non_retryable is False
    assert raised.value.next_retry_delay == timedelta(seconds=60)


def test_unreachable_sendgrid_is_retried(sendgrid) -> None:
    """No answer at all (connection refused) is retryable too."""
    closed = sendgrid.host.rsplit(":", 1)[0] + ":9"

    with pytest.raises(MailTemporarilyUnavailable) as raised:
        send_terms(SendGridMailer(API_KEY, host=closed))

    assert raised.value.non_retryable is False


def test_sendgrid_backend_needs_an_api_key(tmp_path) -> None:
    """The mailer from settings without DOSSIER_SENDGRID_API_KEY says what to set."""
    settings = Settings(data_dir=tmp_path, mail_backend="sendgrid")

    with pytest.raises(ValueError) as raised:
        SendGridMailer.from_settings(settings)

    assert str(raised.value) == (
        "DOSSIER_MAIL_BACKEND is sendgrid but DOSSIER_SENDGRID_API_KEY is not set; "
        "set the key or use the outbox backend"
    )


def test_mailer_from_environment_sends_to_the_configured_host(
    sendgrid, monkeypatch, tmp_path
) -> None:
    """DOSSIER_SENDGRID_* set the key, the API host and sandbox mode."""
    monkeypatch.setenv("DOSSIER_MAIL_BACKEND", "sendgrid")
    monkeypatch.setenv("DOSSIER_SENDGRID_API_KEY", "SG.from-env")
    monkeypatch.setenv("DOSSIER_SENDGRID_API_HOST", sendgrid.host + "/")
    monkeypatch.setenv("DOSSIER_SENDGRID_SANDBOX", "true")
    settings = Settings(data_dir=tmp_path)

    send_terms(SendGridMailer.from_settings(settings))

    [post] = sendgrid.posts
    assert settings.mail_backend == "sendgrid"
    assert post.authorization == "Bearer SG.from-env"
    assert post.payload["mail_settings"] == {"sandbox_mode": {"enable": True}}


# --- through the send_mail activity ----------------------------------------


@pytest.fixture
def env() -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, workflow_id=WORKFLOW_ID, workflow_run_id="run-1", activity_id="1"
    )
    return env


@pytest.fixture
def activities(settings, session_factory, sendgrid) -> DossierActivities:
    return DossierActivities(
        settings=settings,
        session_factory=session_factory,
        archive=LocalArchive(settings.archive_dir),
        mailer=SendGridMailer(API_KEY, host=sendgrid.host),
        clock=lambda: NOW,
    )


def terms_mail() -> MailInput:
    return MailInput(
        key=TERMS_KEY,
        dossier=training_dossier(),
        template="terms",
        to=[CLIENT_EMAIL],
        sign_links={"client": "http://localhost:8000/sign/abc"},
    )


async def test_retry_after_a_server_error_sends_once(
    env, activities, sendgrid, session_factory
) -> None:
    """500 then 202: SendGrid accepts one mail; a third run sends nothing."""
    sendgrid.answer(500, 202)

    with pytest.raises(MailTemporarilyUnavailable):
        await env.run(activities.send_mail, terms_mail())
    retried = await env.run(activities.send_mail, terms_mail())
    again = await env.run(activities.send_mail, terms_mail())

    assert [post.status for post in sendgrid.posts] == [500, 202]
    assert sendgrid.posts[0].payload == sendgrid.posts[1].payload
    assert len(sendgrid.accepted) == 1
    assert sendgrid.accepted[0]["custom_args"] == {
        "dossier_id": "0412345614-ls-2026-0141",
        "message_id": "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>",
    }
    assert (retried.already_sent, again.already_sent) == (False, True)
    assert retried.message_id == TERMS_MESSAGE_ID
    with session_factory() as session:
        assert session.get_one(Message, TERMS_KEY).status == "sent"


async def test_rejected_mail_stays_pending(
    env, activities, sendgrid, session_factory
) -> None:
    """A 400 fails the activity for good and leaves the mail recorded as pending."""
    sendgrid.answer(400)

    with pytest.raises(ApplicationError) as raised:
        await env.run(activities.send_mail, terms_mail())

    assert raised.value.type == "MailRejected"
    assert raised.value.non_retryable is True
    with session_factory() as session:
        assert session.get_one(Message, TERMS_KEY).status == "pending"


def test_settings_choose_the_mailer(tmp_path):
    """The outbox by default; SendGrid when asked, and only with its key."""
    from adapters.sendgrid import make_mailer
    from adapters.settings import Settings

    outbox = make_mailer(Settings(data_dir=tmp_path))
    sendgrid = make_mailer(
        Settings(data_dir=tmp_path, mail_backend="sendgrid", sendgrid_api_key="SG.x")
    )

    assert type(outbox).__name__ == "OutboxMailer"
    assert type(sendgrid).__name__ == "SendGridMailer"
    with pytest.raises(ValueError, match="DOSSIER_SENDGRID_API_KEY is not set"):
        make_mailer(Settings(data_dir=tmp_path, mail_backend="sendgrid"))
