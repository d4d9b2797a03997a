"""The web app's access log, as uvicorn writes it, keeps no secret of a URL.

The app runs under uvicorn on a loopback port with the production logging
(`configure_logging(json=True)`); every line written while a signing link,
the Inbound Parse webhook, a document download and a query string are
requested is read back from stderr.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import structlog
import uvicorn
from pydantic import SecretStr

from adapters.logging import REDACTED, configure_logging
from web.app import create_app

TOKEN = "eyJsaW5rIjoiZG9zc2llci0xIn0.Zm9v.YmFyYmF6"  # the shape of a sign token
INBOUND_SECRET = "inbound-path-secret-7f3a9c"
ARCHIVE_KEY = "0412345614/0412345614-ls-2026-0141/ab12-certificaat-An Peeters.pdf"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Production logging (JSON lines), written to a buffer the test reads.

    The previous set-up comes back afterwards.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(json=True)
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def boom(token: str) -> None:
    """A route that fails with a secret in its frame's local variables."""
    client_email = "an.peeters@bakkerij-peeters.example"
    raise RuntimeError(f"failed for {len(client_email)} characters")


def read(buffer: io.StringIO) -> list[dict]:
    time.sleep(0.2)  # uvicorn logs just after the response is sent
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.fixture
def web_url(
    log_lines, settings, time_skipping_env, session_factory, free_port
) -> Iterator[str]:
    settings = settings.model_copy(update={"inbound_secret": SecretStr(INBOUND_SECRET)})
    app = create_app(
        settings,
        temporal_client=time_skipping_env.client,
        session_factory=session_factory,
    )
    app.add_api_route("/boom/{token}", boom)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{free_port}"
    server.should_exit = True
    thread.join(timeout=15)


def test_access_log_masks_tokens_secrets_keys_and_queries(
    web_url: str, log_lines: io.StringIO
) -> None:
    """Each request is logged, with what it carries in its URL masked."""
    with httpx.Client(base_url=web_url, timeout=15) as http:
        statuses = [
            http.get(f"/sign/{TOKEN}").status_code,
            http.post(f"/sign/{TOKEN}/renew").status_code,
            http.post(f"/webhooks/sendgrid/inbound/{INBOUND_SECRET}").status_code,
            http.get(f"/portal/documents/{ARCHIVE_KEY}/download").status_code,
            http.get("/healthz", params={"login": TOKEN}).status_code,
        ]
    lines = read(log_lines)
    events = [line["event"] for line in lines]
    access = [line for line in lines if line.get("logger") == "uvicorn.access"]

    assert all(status < 500 for status in statuses), statuses
    assert len(access) == len(statuses), events
    for secret in (TOKEN, INBOUND_SECRET, "An Peeters", "An%20Peeters"):
        assert not [event for event in events if secret in event], secret
    paths = [line["event"] for line in access]
    assert f'"GET /sign/{REDACTED} HTTP/1.1"' in paths[0]
    assert f'"POST /sign/{REDACTED}/renew HTTP/1.1"' in paths[1]
    assert f"/webhooks/sendgrid/inbound/{REDACTED} " in paths[2]
    assert f"/portal/documents/{REDACTED}/download " in paths[3]
    assert f"/healthz?{REDACTED} " in paths[4]


def test_other_paths_are_logged_as_they_are(
    web_url: str, log_lines: io.StringIO
) -> None:
    """A path with nothing secret in it reaches the log unchanged."""
    with httpx.Client(base_url=web_url, timeout=15) as http:
        http.get("/healthz")
        http.get("/api/dossiers/0412345614-ls-2026-0141")
    events = [line["event"] for line in read(log_lines)]

    assert any('"GET /healthz HTTP/1.1" 200' in event for event in events)
    assert any(
        "/api/dossiers/0412345614-ls-2026-0141 HTTP/1.1" in event for event in events
    )


def test_an_unexpected_error_is_logged_once_without_local_variables(
    web_url: str, log_lines: io.StringIO
) -> None:
    """One line with the incident id and the traceback, no frame locals."""
    with httpx.Client(base_url=web_url, timeout=15) as http:
        response = http.get(f"/boom/{TOKEN}")
    lines = read(log_lines)
    errors = [line for line in lines if line["level"] == "error"]

    assert response.status_code == 500
    incident = response.json()["error"].split("incident ")[1].split(")")[0]
    [error] = errors
    assert error["event"] == "web.unexpected_error"
    assert error["incident"] == incident
    assert error["path"] == f"/boom/{TOKEN}"  # not a path we know to mask
    [exception] = error["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert all("locals" not in frame for frame in exception["frames"])
    assert "bakkerij-peeters" not in log_lines.getvalue()
    assert "Exception in ASGI application" not in log_lines.getvalue()
