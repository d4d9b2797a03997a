"""structlog set-up: readable console lines in development, JSON lines in production.

Log events with ids only (`dossier_id`, `workflow_id`, `message_id`, ...):
never tokens, mail bodies, addresses or names. As a safety net, values under
keys that usually carry such data are replaced before rendering, and the
standard library's lines (uvicorn's access log, httpx) have the secret parts
of our URLs masked: a signing link's token, the Inbound Parse secret, an
archive key (it may hold a participant's name) and every query string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {
        "token",
        "secret",
        "password",
        "body",
        "html",
        "text",
        "email",
        "to",
        "recipients",
        "phone",
        "name",
        "url",
        "link",
        "links",
    }
)


# What follows these path prefixes is a secret or names a person.
SECRET_PATHS = re.compile(
    r"(/sign/|/webhooks/sendgrid/inbound/)[^/\s?#\"']+"
    r"|(/portal/documents/)[^\"'\n]+?(/download)"
)
QUERY_STRING = re.compile(r"\?[^\s\"']*")


def redact_url_secrets(text: str) -> str:
    """`text` with the tokens, secrets, archive keys and queries of URLs masked."""
    text = SECRET_PATHS.sub(_masked_path, text)
    return QUERY_STRING.sub("?" + REDACTED, text)


def _masked_path(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + REDACTED
    return match.group(2) + REDACTED + match.group(3)


class RedactUrlSecrets(logging.Filter):
    """Masks URL secrets in the standard library's records (see the module doc).

    The record's message is formatted here, once, and its arguments dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            message = record.getMessage()
            masked = redact_url_secrets(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace values under keys that usually hold secrets or personal data."""
    for key in event_dict.keys() & SENSITIVE_KEYS:
        event_dict[key] = REDACTED
    return event_dict


def configure_logging(json: bool, level: int = logging.INFO) -> None:
    """Route structlog and the standard library (Temporal's SDK) to one renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_sensitive,
    ]
    renderer: Any
    if json:
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer()

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    handler.addFilter(RedactUrlSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
