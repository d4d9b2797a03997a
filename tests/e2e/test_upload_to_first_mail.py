"""From an HTTP upload to the client's first mail, with every part real.

Temporal's dev server, the worker with the real activities (SQLite, local
archive, outbox mailer), and the web app served by uvicorn on a loopback
port, connecting to Temporal and the database by itself from its settings.
"""

from __future__ import annotations

import asyncio
import email
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email import policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import OutboxMailer
from adapters.records import Dossier
from starter.cli import app as cli
from web.app import create_app
from worker import build_worker
from workflows import search

pytestmark = pytest.mark.e2e

CLIENT = "an.peeters@bakkerij-peeters.example"
PARTICIPANT = f"An Peeters <{CLIENT}>"
WORKFLOW_ID = "dossier-0412345614-ls-2026-0141"
MAIL_WAIT_SECONDS = 30


@pytest.fixture
def e2e_settings(settings, dev_env):
    """The test's settings, pointed at the dev server of this session."""
    address = dev_env.client.service_client.config.target_host
    return settings.model_copy(update={"temporal_address": address})


@pytest.fixture
async def worker(
    dev_env, e2e_settings, session_factory, dossier_workflows_removed
) -> AsyncIterator[None]:
    """The real worker, in this process, on the test's own task queue."""
    activities = DossierActivities(
        settings=e2e_settings,
        session_factory=session_factory,
        archive=LocalArchive(e2e_settings.archive_dir),
        mailer=OutboxMailer(e2e_settings.outbox_dir),
    )
    async with build_worker(dev_env.client, e2e_settings, activities):
        yield


@pytest.fixture
def web_url(e2e_settings, free_port: int) -> Iterator[str]:
    """The web app under uvicorn in a thread; it builds its own connections."""
    port = free_port
    config = uvicorn.Config(
        create_app(e2e_settings), host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_until(lambda: server.started, seconds=15)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


async def test_upload_leads_to_a_mail_to_the_client_and_a_record(
    worker, web_url, e2e_settings, session_factory, invoices: Path, dev_env
):
    """An uploaded invoice gets the client a mail within 30 s and a Dossier row."""
    data = (invoices / "training-open-1p.xml").read_bytes()

    async with httpx.AsyncClient(base_url=web_url, timeout=30) as http:
        first = await _upload(http, data)
        mail = await _first_mail_to(CLIENT, e2e_settings.outbox_dir)
        second = await _upload(http, data)

    assert first.status_code == 201
    assert first.json()["workflow_id"] == WORKFLOW_ID
    assert mail["To"] == CLIENT
    with session_factory() as session:
        row = session.get(Dossier, "0412345614-ls-2026-0141")
    assert row is not None
    assert row.workflow_id == WORKFLOW_ID
    assert second.status_code == 200
    assert second.json()["workflow_id"] == WORKFLOW_ID
    attributes, row = await _waiting_for_the_application(dev_env, session_factory)
    assert attributes[search.KIND] == "training"
    assert attributes[search.PROVIDER] == "0412345614"
    assert attributes[search.CLIENT] == row.client_enterprise_number
    assert attributes[search.STEP] == "application"  # onboarding mailed, waiting
    assert attributes[search.NEXT_DEADLINE].date() == row.next_deadline


async def _waiting_for_the_application(dev_env, session_factory) -> tuple[dict, Any]:
    """Search attributes and record once both say the dossier waits to be filed."""
    handle = dev_env.client.get_workflow_handle(WORKFLOW_ID)
    for _ in range(MAIL_WAIT_SECONDS * 10):
        attributes = (await handle.describe()).typed_search_attributes
        with session_factory() as session:
            row = session.get_one(Dossier, "0412345614-ls-2026-0141")
        if attributes.get(search.STEP) == "application" and row.next_deadline:
            break
        await asyncio.sleep(0.1)
    return {pair.key: pair.value for pair in attributes}, row


async def test_cli_uploads_and_reads_status_through_the_running_app(
    worker, web_url, invoices: Path
):
    """`dossier upload`, `status` and `list` work against the real app and worker."""
    invoice = str(invoices / "training-incompany-10p-12m.xml")

    uploaded = await _cli("upload", invoice, "--url", web_url)
    status = await _cli("status", "0412345614-ls-2026-0157", "--url", web_url)
    listed = await _cli("list", "--url", web_url)

    assert uploaded.exit_code == 0
    assert "Dossier 0412345614-ls-2026-0157 started" in uploaded.stdout
    assert "fee          EUR 600.00 excl. VAT (EUR 726.00 incl.)" in uploaded.stdout
    assert (
        "Temporal UI  http://localhost:8233/namespaces/default/workflows/"
        "dossier-0412345614-ls-2026-0157"
    ) in uploaded.stdout
    assert status.exit_code == 0
    assert "Dossier 0412345614-ls-2026-0157" in status.stdout
    assert "live status unavailable" not in status.stdout
    assert listed.exit_code == 0
    assert "0412345614-ls-2026-0157" in listed.stdout


async def _upload(http: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await http.post(
        "/api/dossiers",
        files={"invoice": ("training-open-1p.xml", data, "application/xml")},
        data={"participants": PARTICIPANT},
    )


async def _first_mail_to(address: str, outbox: Path) -> email.message.EmailMessage:
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if address in str(message["To"]):
                return message
        await asyncio.sleep(0.2)
    raise AssertionError(
        f"no mail to {address} in {outbox} after {MAIL_WAIT_SECONDS} s"
    )


async def _cli(*args: str):
    """Run the CLI in a thread: it blocks, and the worker needs this event loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


def _wait_until(check, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {seconds} s")
        time.sleep(0.05)
