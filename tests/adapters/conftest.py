"""Databases for the records tests.

Each PostgreSQL test gets its own database `dossier_test_<random>`, created on
the server at 127.0.0.1:5432 and dropped afterwards, so that other tests using
the database `test` at the same time are never touched. The moto S3 server of
the archive tests is in tests/conftest.py, shared with the other S3 tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

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
