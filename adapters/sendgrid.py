"""Mail out through SendGrid's v3 API, behind the same `Mailer` interface.

The composed mail (see `adapters.mail.compose`) is turned into a v3 payload:
sender, reply address, recipients, subject, text and HTML, attachments, the
Message-ID and dossier headers, and `custom_args` naming the dossier and the
Message-ID, which SendGrid hands back in every event of the event webhook.

SendGrid takes no idempotency key. Sending once is the activity's work: it
records the mail as pending before sending and as sent after a 202, and never
sends a mail recorded as sent. A 4xx or 5xx answer means SendGrid did not take
the mail, so the retry that follows a 429 or 5xx sends it for the first time.
Two cases can deliver a second copy, with the same Message-ID: an answer lost
after SendGrid accepted (timeout, connection reset), and a worker that dies
between the 202 and the activity's record. `already_accepted` knows only the
mails this process saw accepted: SendGrid offers no cheap, current lookup by
Message-ID (its Email Activity API is a paid add-on and lags behind).
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from datetime import timedelta
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from typing import Any
from urllib.error import URLError

import structlog
from python_http_client.exceptions import (  # type: ignore[import-untyped]  # no hints
    HTTPError,
)
from sendgrid import SendGridAPIClient  # type: ignore[import-untyped]  # no hints
from sendgrid.helpers.mail import (  # type: ignore[import-untyped]  # no hints
    Attachment,
    Content,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    Header,
    Mail,
    MailSettings,
    ReplyTo,
    SandBoxMode,
    To,
)
from temporalio.exceptions import ApplicationError

from adapters.mail import Mailer, OutboxMailer
from adapters.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_HOST = "https://api.sendgrid.com"
TIMEOUT_SECONDS = 30.0
# Headers SendGrid sets itself from the payload's own fields.
_FIELD_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "subject", "content-type"}
    | {"content-transfer-encoding", "mime-version", "date"}
)
_MAX_ERROR_FIELDS = 5
# Message-IDs remembered as accepted, for retries within this process.
REMEMBERED_ACCEPTED = 10_000


class MailTemporarilyUnavailable(ApplicationError):
    """SendGrid could not take the mail now (429 or 5xx, or no answer): retry."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None):
        super().__init__(
            message,
            type="MailTemporarilyUnavailable",
            non_retryable=False,
            next_retry_delay=retry_after,
        )


class SendGridMailer:
    """Sends each composed mail with one POST to SendGrid's /v3/mail/send."""

    def __init__(
        self, api_key: str, *, host: str = DEFAULT_HOST, sandbox: bool = False
    ) -> None:
        self._client = SendGridAPIClient(api_key, host=host.rstrip("/"))
        self._client.client.timeout = TIMEOUT_SECONDS
        self._sandbox = sandbox
        self._accepted: OrderedDict[str, None] = OrderedDict()
        self._accepted_lock = threading.Lock()  # activities send from threads

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridMailer:
        """The mailer of DOSSIER_SENDGRID_*; the API key must be set."""
        if settings.sendgrid_api_key is None:
            raise ValueError(
                "DOSSIER_MAIL_BACKEND is sendgrid but DOSSIER_SENDGRID_API_KEY is "
                "not set; set the key or use the outbox backend"
            )
        return cls(
            settings.sendgrid_api_key.get_secret_value(),
            host=settings.sendgrid_api_host,
            sandbox=settings.sendgrid_sandbox,
        )

    def already_accepted(self, message: EmailMessage) -> bool:
        """True when this process saw SendGrid accept the mail's Message-ID."""
        with self._accepted_lock:
            return str(message["Message-ID"]) in self._accepted

    def send(self, message: EmailMessage, data: bytes) -> None:
        """POST the mail's parts; SendGrid builds its own MIME, `data` is unused."""
        message_id = str(message["Message-ID"])
        payload = self.payload(message)
        try:
            response = self._client.send(payload)
        except HTTPError as error:
            raise _send_error(error, message_id) from None
        except (URLError, TimeoutError, ConnectionError) as error:
            log.warning(
                "mail.sendgrid_unreachable",
                message_id=message_id,
                error=type(error).__name__,
            )
            raise MailTemporarilyUnavailable(
                f"SendGrid did not answer for mail {message_id} "
                f"({type(error).__name__}); it will be tried again"
            ) from None
        self._remember(message_id)
        log.info(
            "mail.sendgrid_accepted", message_id=message_id, status=response.status_code
        )

    def _remember(self, message_id: str) -> None:
        with self._accepted_lock:
            self._accepted[message_id] = None
            self._accepted.move_to_end(message_id)
            while len(self._accepted) > REMEMBERED_ACCEPTED:
                self._accepted.popitem(last=False)

    def payload(self, message: EmailMessage) -> dict[str, Any]:
        """The v3 /mail/send body for the composed `message`."""
        sender = _addresses(message, "From")[0]
        mail = Mail(
            from_email=From(sender.addr_spec, sender.display_name or None),
            to_emails=[To(a.addr_spec, a.display_name or None) for a in _to(message)],
            subject=str(message["Subject"]),
        )
        reply_to = _addresses(message, "Reply-To")
        if reply_to:
            mail.reply_to = ReplyTo(reply_to[0].addr_spec)
        for subtype in ("plain", "html"):
            body = message.get_body(preferencelist=(subtype,))
            if body is not None and body.get_content_subtype() == subtype:
                mail.add_content(Content(f"text/{subtype}", body.get_content()))
        for part in message.iter_attachments():
            mail.add_attachment(_attachment(part))
        for name, value in message.items():
            if name.lower() not in _FIELD_HEADERS:
                mail.add_header(Header(name, str(value)))
        mail.add_custom_arg(CustomArg("dossier_id", str(message["X-Dossier-Id"])))
        mail.add_custom_arg(CustomArg("message_id", str(message["Message-ID"])))
        if self._sandbox:
            mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
        payload: dict[str, Any] = mail.get()
        return payload


def _addresses(message: EmailMessage, name: str) -> list[Any]:
    header = message[name]
    if not isinstance(header, AddressHeader):
        return []
    return list(header.addresses)


def _to(message: EmailMessage) -> list[Any]:
    recipients = _addresses(message, "To")
    if not recipients:
        raise ApplicationError(
            f"mail {message['Message-ID']} has no recipient",
            type="MailRejected",
            non_retryable=True,
        )
    return recipients


def _attachment(part: EmailMessage) -> Attachment:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)  # an attachment part is never multipart
    return Attachment(
        FileContent(base64.b64encode(data).decode("ascii")),
        FileName(part.get_filename() or "attachment"),
        FileType(part.get_content_type()),
        Disposition("attachment"),
    )


def _send_error(error: HTTPError, message_id: str) -> ApplicationError:
    """A rejection (4xx but 429) is final; throttling and 5xx are retried."""
    status = int(error.status_code)
    fields = _error_fields(error)
    log.warning(
        "mail.sendgrid_refused", message_id=message_id, status=status, fields=fields
    )
    if status == 429 or status >= 500:
        return MailTemporarilyUnavailable(
            f"SendGrid could not take mail {message_id} now (HTTP {status}); "
            "it will be tried again",
            retry_after=_retry_after(error),
        )
    detail = f" (fields: {', '.join(fields)})" if fields else ""
    return ApplicationError(
        f"SendGrid rejected mail {message_id} with HTTP {status}{detail}; check "
        "the API key, the verified sender domain and the mail's fields, then "
        "resend it from the staff page",
        type="MailRejected",
        non_retryable=True,
    )


def _error_fields(error: HTTPError) -> list[str]:
    """The payload fields SendGrid names in its errors; never its messages.

    The messages may quote addresses, so only field names are kept.
    """
    try:
        errors = error.to_dict.get("errors", [])
    except (ValueError, AttributeError, UnicodeDecodeError):
        return []
    if not isinstance(errors, list):
        return []
    fields = [
        str(item["field"])
        for item in errors
        if isinstance(item, dict) and isinstance(item.get("field"), str)
    ]
    return fields[:_MAX_ERROR_FIELDS]


def _retry_after(error: HTTPError) -> timedelta | None:
    headers = getattr(error, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = int(value) if value is not None else None
    except ValueError:
        return None
    return timedelta(seconds=seconds) if seconds and seconds > 0 else None


def make_mailer(settings: Settings) -> Mailer:
    """The mailer the settings choose: the outbox folder, or SendGrid."""
    if settings.mail_backend == "sendgrid":
        return SendGridMailer.from_settings(settings)
    return OutboxMailer(settings.outbox_dir)
