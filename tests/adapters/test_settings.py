"""Settings: environment prefix, defaults and paths derived from data_dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adapters.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No DOSSIER_ variable of the developer's shell leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("DOSSIER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_paths_follow_data_dir(tmp_path: Path) -> None:
    """Setting only data_dir moves the database, archive and outbox with it."""
    settings = Settings(data_dir=tmp_path / "d")

    assert settings.database_url == f"sqlite:///{tmp_path}/d/dossier.db"
    assert settings.archive_dir == tmp_path / "d" / "archive"
    assert settings.outbox_dir == tmp_path / "d" / "outbox"


def test_data_dir_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DOSSIER_DATA_DIR in the environment moves the derived paths too."""
    monkeypatch.setenv("DOSSIER_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("DOSSIER_TASK_QUEUE", "dossiers-test")

    settings = Settings()

    assert settings.archive_dir == tmp_path / "env" / "archive"
    assert settings.database_url == f"sqlite:///{tmp_path}/env/dossier.db"
    assert settings.task_queue == "dossiers-test"


def test_explicit_paths_win_over_data_dir(tmp_path: Path) -> None:
    """A path set on its own is kept, even when data_dir is set as well."""
    settings = Settings(
        data_dir=tmp_path,
        archive_dir=tmp_path / "elsewhere",
        database_url="postgresql+psycopg://postgres@127.0.0.1:5432/test",
    )

    assert settings.archive_dir == tmp_path / "elsewhere"
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert settings.outbox_dir == tmp_path / "outbox"


def test_defaults() -> None:
    """Without environment the embedded one-machine defaults apply."""
    settings = Settings()

    assert settings.data_dir == Path(".data")
    assert settings.database_url == "sqlite:///.data/dossier.db"
    assert settings.temporal_address == "localhost:7233"
    assert settings.temporal_namespace == "default"
    assert settings.task_queue == "dossiers"
    assert settings.base_url == "http://localhost:8000"
    assert settings.temporal_ui_url == "http://localhost:8233"
    assert settings.staff_email == "staff@kmo-dossier.example"
    assert settings.mail_domain == "kmo-dossier.example"
    assert settings.container_domain == "containers.kmo-dossier.example"
    assert settings.log_json is False


def test_dev_link_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    """Without DOSSIER_LINK_SECRET a secret is written once and read back later."""
    first = Settings(data_dir=tmp_path)
    second = Settings(data_dir=tmp_path)

    secret_file = tmp_path / "link-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert first.link_secret.get_secret_value() == secret_file.read_text().strip()
    assert second.link_secret.get_secret_value() == first.link_secret.get_secret_value()
    assert len(first.link_secret.get_secret_value()) >= 32


def test_link_secret_from_environment_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A secret given in the environment is used as is and nothing is written."""
    monkeypatch.setenv("DOSSIER_LINK_SECRET", "production-secret-value")

    settings = Settings(data_dir=tmp_path)

    assert settings.link_secret.get_secret_value() == "production-secret-value"
    assert "production-secret-value" not in repr(settings)
    assert not (tmp_path / "link-secret").exists()


def test_trailing_slash_is_dropped_from_base_url() -> None:
    """Links are built as base_url + path, so a trailing slash is removed."""
    settings = Settings(base_url="https://dossier.example/")

    assert settings.base_url == "https://dossier.example"
