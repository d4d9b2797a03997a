"""`dossier dev` as a developer runs it: the whole stack up, used, and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from starter.dev import temporal_command

pytestmark = pytest.mark.e2e

DOSSIER = [sys.executable, "-m", "starter.cli"]
STARTUP_SECONDS = 90


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a stack of its own: data in tmp_path, free ports."""
    temporal, ui, web, smtp = _free_ports(4)
    return {
        **os.environ,
        "DOSSIER_DATA_DIR": str(tmp_path / "data"),
        "DOSSIER_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
        "DOSSIER_TEMPORAL_UI_URL": f"http://localhost:{ui}",
        "DOSSIER_BASE_URL": f"http://127.0.0.1:{web}",
        "DOSSIER_SMTP_PORT": str(smtp),  # a `make run` stack may hold 2525
    }


@pytest.fixture
def dev_stack(stack_env, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dossier dev` in its own process group, its output in a log file."""
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(
        [*DOSSIER, "dev"],
        env=stack_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    yield process
    if process.poll() is None:  # the test failed before stopping it
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


def test_temporal_is_started_with_its_database_ports_and_search_attributes(
    settings,
):
    """The dev server keeps its state under data_dir and knows our search attributes."""
    command = temporal_command(settings)

    assert command[1:4] == ["server", "start-dev", "--db-filename"]
    assert command[4] == str(settings.data_dir / "temporal.db")
    assert command[5:13] == [
        "--ip",
        "127.0.0.1",
        "--port",
        "7233",
        "--ui-port",
        "8233",
        "--namespace",
        "default",
    ]
    assert "DossierStep=Keyword" in command
    assert "NextDeadline=Datetime" in command


def test_dev_runs_the_stack_until_sigterm_and_stops_every_part(
    dev_stack, stack_env, invoices: Path
):
    """Started, the stack takes an upload; SIGTERM stops it and frees its ports."""
    url = stack_env["DOSSIER_BASE_URL"]
    _wait_until_ready(url, dev_stack)

    uploaded = subprocess.run(
        [*DOSSIER, "upload", str(invoices / "training-open-1p.xml"), "--url", url],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    dev_stack.send_signal(signal.SIGTERM)
    code = dev_stack.wait(timeout=30)

    assert uploaded.returncode == 0, uploaded.stderr
    assert "Dossier 0412345614-ls-2026-0141 started" in uploaded.stdout
    assert code == 0
    assert not _port_open(stack_env["DOSSIER_TEMPORAL_ADDRESS"])
    assert not _port_open(url.removeprefix("http://"))


def _wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "dossier dev exited early; see its log"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the stack was not ready after {STARTUP_SECONDS} s")


def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True
