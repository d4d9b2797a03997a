"""A client signs the terms in a real browser, with every part of the stack real.

Temporal's dev server, the worker with the real activities, the web app under
uvicorn on a loopback port, and Debian's Chromium driven by Playwright at a
phone's width, by keyboard.
"""

from __future__ import annotations

import asyncio
import email
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from email import policy
from pathlib import Path

import httpx
import pytest
import uvicorn

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import OutboxMailer
from web.app import create_app
from worker import build_worker
from workflows.messages import ApplicationInput

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
WAIT_SECONDS = 30

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def e2e_settings(settings, dev_env, free_port: int):
    """The test's settings: the session's dev server, links to this app's port."""
    address = dev_env.client.service_client.config.target_host
    return settings.model_copy(
        update={
            "temporal_address": address,
            "base_url": f"http://127.0.0.1:{free_port}",
        }
    )


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
def web_url(e2e_settings) -> Iterator[str]:
    """The web app under uvicorn in a thread, at the settings' base URL."""
    port = int(e2e_settings.base_url.rsplit(":", 1)[1])
    config = uvicorn.Config(
        create_app(e2e_settings), host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait_until(lambda: server.started, seconds=15)
    yield e2e_settings.base_url
    server.should_exit = True
    thread.join(timeout=15)


async def test_client_signs_the_terms_in_a_browser_and_the_dossier_moves_to_payment(
    dev_env, worker, web_url, e2e_settings, invoices: Path
):
    """Typing the name, ticking consent and submitting moves the dossier to payment."""
    async_api = pytest.importorskip("playwright.async_api")
    number = f"LS-E2E-{uuid.uuid4().hex[:6].upper()}"
    text = (invoices / "training-open-1p.xml").read_text(encoding="utf-8")

    async with httpx.AsyncClient(base_url=web_url, timeout=30) as http:
        uploaded = await http.post(
            "/api/dossiers",
            files={"invoice": ("invoice.xml", text.replace("LS-2026-0141", number))},
            data={"has_platform_account": "yes"},
        )
        assert uploaded.status_code == 201, uploaded.text
        dossier_id = uploaded.json()["dossier_id"]
        handle = dev_env.client.get_workflow_handle(uploaded.json()["workflow_id"])
        await handle.signal("record_application", ApplicationInput("P-E2E-1"))
        link = await _terms_link(Path(e2e_settings.outbox_dir))

        async with async_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            page = await browser.new_page(viewport=PHONE)
            await page.goto(link)
            fits = await page.evaluate(
                "document.documentElement.scrollWidth <= window.innerWidth"
            )
            await page.get_by_label("Uw volledige naam").click()
            await page.keyboard.type("An Peeters")
            await page.keyboard.press("Tab")
            await page.keyboard.press("Space")
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            heading = page.get_by_role("heading", level=1)
            await async_api.expect(heading).to_have_text(
                "Bedankt, uw handtekening is ontvangen"
            )
            await browser.close()

        step = await _step_becomes(http, dossier_id, "payment")

    assert fits
    assert step == "payment"


async def _terms_link(outbox: Path) -> str:
    """The signing link in the terms mail, once the workflow has sent it."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for path in outbox.glob("[!.]*.eml"):  # not the files still being written
            mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            if mail["X-Dossier-Template"] == "terms":
                body = mail.get_body(preferencelist=("plain",)).get_content()
                return re.search(r"http://\S+/sign/\S+", body).group(0)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no terms mail in {outbox} after {WAIT_SECONDS} s")


async def _step_becomes(http: httpx.AsyncClient, dossier_id: str, step: str) -> str:
    """The step in the status query's answer, once it is `step` (or time is up)."""
    deadline = time.monotonic() + WAIT_SECONDS
    current = None
    while time.monotonic() < deadline:
        answer = (await http.get(f"/api/dossiers/{dossier_id}")).json()
        current = (answer.get("status") or {}).get("step")
        if current == step:
            break
        await asyncio.sleep(0.2)
    return current


def _wait_until(check, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {seconds} s")
        time.sleep(0.05)
