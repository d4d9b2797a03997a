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
ASGI_ERROR = "Exception in ASGI application"
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
    uvicorn's own report of an error the app answered with 500 is dropped: the
    app logged it already, once, with its incident id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error" and str(record.msg).strip() == ASGI_ERROR:
            return False
        if isinstance(record.msg, str):
            message = record.getMessage()
            masked = redact_url_secrets(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


def redact_sensitive(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace values under keys that usually hold secrets or personal data.

    A request's `path` keeps its shape, with its secret parts masked.
    """
    for key in event_dict.keys() & SENSITIVE_KEYS:
        event_dict[key] = REDACTED
    if isinstance(event_dict.get("path"), str):
        event_dict["path"] = redact_url_secrets(event_dict["path"])
    return event_dict


# Libraries whose INFO lines say nothing staff need, or say too much: aiosmtpd
# ("mail.log") logs every sender and recipient address.
QUIET_LOGGERS = ("mail.log", "weasyprint", "fontTools", "alembic.runtime.plugins")


def configure_logging(json: bool, level: int = logging.INFO) -> None:
    """Route structlog and the standard library (Temporal's SDK) to one renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_sensitive,
    ]
    # Tracebacks without the frames' local variables: those hold request
    # bodies, addresses and tokens.
    renderer: Any
    if json:
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),  # no escape codes in a log file
            exception_formatter=structlog.dev.plain_traceback,
        )

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
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
