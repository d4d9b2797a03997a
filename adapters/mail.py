"""Mail out: composing a dossier's mail and handing it to a mailer.

`OutboxMailer` is the one-machine default: each mail becomes an RFC 5322
`.eml` file in the outbox folder, listed on a staff page. Production sends
through SendGrid behind the same `Mailer` interface.

A mail is composed deterministically from its idempotency key and date: the
Message-ID and the MIME boundaries derive from the key, so composing the same
mail again gives the same bytes, and the archive stores it once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from adapters.files import write_once
from kmo.addresses import mail_address

_LOCAL_PART_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, making each header class once.

    `HeaderRegistry` makes a new class for every header it parses or checks,
    which was a third of the time spent composing a mail. The classes it makes
    for one registered class are all alike, so the first one is reused: same
    parsing, same folding, same bytes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type[Any], type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        registered = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(registered)
        if made is None:  # threads that race here each make an equal class
            made = self._made[registered] = super().__getitem__(name)
        return made


# policy.SMTP (RFC 5322 with CRLF line ends), with the header classes made once.
MAIL_POLICY = policy.SMTP.clone(header_factory=_HeaderClasses())


@dataclass(frozen=True)
class MailAttachment:
    filename: str
    data: bytes
    mime_type: str = "application/octet-stream"


class Mailer(Protocol):
    def send(self, message: EmailMessage, data: bytes) -> None:
        """Send `message`; `data` is its serialised form, `as_bytes(message)`.

        The caller has serialised the mail once for the archive already; a
        mailer that sends whole RFC 5322 files sends those same bytes.
        """
        ...

    def already_accepted(self, message: EmailMessage) -> bool:
        """True when the backend provably took this Message-ID before.

        Asked before a retried send, so that a worker that died between the
        send and its record does not mail twice where the backend can tell.
        """
        ...


def container_address(provider_id: str, mail_domain: str) -> str:
    """A provider container's address: `<provider_id>@containers.<mail_domain>`."""
    return f"{_local_part(provider_id)}@containers.{mail_domain}"


def dossier_address(dossier_id: str, mail_domain: str) -> str:
    """A dossier's reply address: `dossier+<dossier_id>@containers.<mail_domain>`.

    Characters that do not belong in an address become "-".
    """
    return f"dossier+{_local_part(dossier_id)}@containers.{mail_domain}"


def message_id_for(key: str, mail_domain: str) -> str:
    """The Message-ID of the mail with idempotency key `key`."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{mail_domain}>"


def compose(
    *,
    key: str,
    mail_domain: str,
    provider_id: str,
    provider_name: str,
    dossier_id: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str,
    date: datetime,
    attachments: Iterable[MailAttachment] = (),
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """Build a dossier's mail: from the provider's container, replies to the dossier.

    Raises InvalidAddress when a recipient is not a plain email address.
    """
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = Address(
        display_name=provider_name,
        addr_spec=container_address(provider_id, mail_domain),
    )
    message["Reply-To"] = Address(addr_spec=dossier_address(dossier_id, mail_domain))
    message["To"] = [Address(addr_spec=mail_address(address)) for address in to]
    _set_text_header(message, "Subject", subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id_for(key, mail_domain)
    message["X-Dossier-Id"] = dossier_id
    for name, value in (headers or {}).items():
        message[name] = value

    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    for attachment in attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    _set_boundaries(message, key)
    return message


def as_bytes(message: EmailMessage) -> bytes:
    """The mail as sent and archived (RFC 5322, CRLF line ends)."""
    return message.as_bytes(policy=MAIL_POLICY)


class OutboxMailer:
    """Writes each mail to `<outbox>/<message-id>.eml`; the same mail only once."""

    def __init__(self, outbox_dir: Path | str) -> None:
        self.outbox_dir = Path(outbox_dir)

    def already_accepted(self, message: EmailMessage) -> bool:
        return self.path_for(message).exists()

    def send(self, message: EmailMessage, data: bytes) -> None:
        path = self.path_for(message)
        if path.exists():
            return
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        write_once(path, data, mode=0o640)

    def path_for(self, message: EmailMessage) -> Path:
        message_id = message.get("Message-ID")
        if not message_id:
            raise ValueError("a mail for the outbox needs a Message-ID")
        stem = _LOCAL_PART_UNSAFE.sub("_", str(message_id).strip().strip("<>"))
        return self.outbox_dir / f"{stem.lstrip('.')}.eml"


def _local_part(value: str) -> str:
    return _LOCAL_PART_UNSAFE.sub("-", value).strip("-.") or "unknown"


def _set_text_header(message: EmailMessage, name: str, value: str) -> None:
    """A free-text header; text beyond ASCII as whole RFC 2047 encoded-words.

    The email package folds such a header between two encoded-words where a
    space stood, and decoders drop that space ("opleiding vanAcadémie" in
    some subjects). `email.header.Header` keeps each space inside an
    encoded-word. ASCII text is set as before, to the same bytes.
    """
    if value.isascii():
        message[name] = value
        return
    if any(char in value for char in "\r\n"):
        raise ValueError(f"the {name} header may not contain a line break")
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    message.set_raw(name, encoded)


def _set_boundaries(message: EmailMessage, key: str) -> None:
    """Give every multipart a boundary derived from the key, not a random one."""
    seed = hashlib.sha256(("boundary:" + key).encode()).hexdigest()[:24]
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_{seed}_{index}")
