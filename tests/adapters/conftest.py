"""Databases for the records tests, and a moto S3 server for the archive tests.

Each PostgreSQL test gets its own database `dossier_test_<random>`, created on
the server at 127.0.0.1:5432 and dropped afterwards, so that other tests using
the database `test` at the same time are never touched. Each S3 test gets its
own bucket on one `moto_server` process started for the whole run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = f"dossier_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{POSTGRES_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite file that does not exist yet, in a folder not made yet."""
    return f"sqlite:///{tmp_path / 'records' / 'dossier.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each kind the service runs on."""
    return request.getfixturevalue(f"{request.param}_url")


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
