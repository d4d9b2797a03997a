"""Logging: JSON lines in production, ids bound from context, no personal data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from adapters.logging import configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures logging; afterwards the previous set-up comes back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def test_json_line_with_context_and_utc_timestamp(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In JSON mode an event is one JSON line with bound ids and a UTC timestamp."""
    configure_logging(json=True)
    structlog.contextvars.bind_contextvars(dossier_id="0412345614-LS-2026-0141")

    structlog.get_logger("test").info("mail.sent", message_id="m-1")

    line = capsys.readouterr().err.strip()
    record = json.loads(line)
    assert record["event"] == "mail.sent"
    assert record["dossier_id"] == "0412345614-LS-2026-0141"
    assert record["message_id"] == "m-1"
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")


def test_sensitive_values_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """Tokens, addresses and bodies never reach the log, even when passed."""
    configure_logging(json=True)

    structlog.get_logger("test").info(
        "mail.sent", token="abc.def", to=["an@x.example"], body="Beste An"
    )

    record = json.loads(capsys.readouterr().err.strip())
    assert record["token"] == "[redacted]"
    assert record["to"] == "[redacted]"
    assert record["body"] == "[redacted]"


def test_standard_library_logs_use_the_same_renderer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Temporal's SDK logs through the standard library and comes out as JSON too."""
    configure_logging(json=True)

    logging.getLogger("temporalio.worker").warning("worker %s started", "w-1")

    record = json.loads(capsys.readouterr().err.strip())
    assert record["event"] == "worker w-1 started"
    assert record["logger"] == "temporalio.worker"
    assert record["level"] == "warning"


def test_console_mode_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    """In development the event is a readable console line, not JSON."""
    configure_logging(json=False)

    structlog.get_logger("test").info("dossier.started", dossier_id="d-1")

    line = capsys.readouterr().err
    assert "dossier.started" in line
    assert "dossier_id" in line
    assert not line.lstrip().startswith("{")


def test_smtp_addresses_and_library_chatter_stay_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """aiosmtpd's address lines and WeasyPrint's steps are not logged at INFO."""
    configure_logging(json=True)

    logging.getLogger("mail.log").info("sender: %s", "an@bakkerij-peeters.example")
    logging.getLogger("weasyprint.progress").info("Step 2 - Fetching and parsing CSS")
    logging.getLogger("mail.log").warning("connection lost")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["connection lost"]


def test_console_lines_in_a_file_have_no_colour_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`dossier dev` writes to .data/dev.log: plain text, no ANSI escapes."""
    configure_logging(json=False)

    structlog.get_logger("test").info("dossier.started", dossier_id="d-1")

    assert "\x1b[" not in capsys.readouterr().err
