"""Settings from the environment (prefix `DOSSIER_`), with one-machine defaults.

Only `data_dir` needs setting to move everything: the database, the archive,
the outbox and the development link secret follow it unless set themselves.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.files import write_once

LINK_SECRET_FILE = "link-secret"  # noqa: S105 - a file name, not a secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOSSIER_", extra="ignore")

    data_dir: Path = Path(".data")
    database_url: str = Field(
        default_factory=lambda data: f"sqlite:///{data['data_dir'] / 'dossier.db'}"
    )
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "dossiers"
    archive_dir: Path = Field(default_factory=lambda data: data["data_dir"] / "archive")
    # "s3": a bucket with Object Lock (AWS S3, MinIO, Ceph) instead of archive_dir.
    archive_backend: Literal["local", "s3"] = "local"
    s3_bucket: str = "kmo-dossier-archive"
    s3_endpoint_url: str | None = None  # None: AWS itself
    s3_region: str = "eu-west-1"
    # Unset: boto3 finds its own credentials (instance role, profile, AWS_* env).
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    outbox_dir: Path = Field(default_factory=lambda data: data["data_dir"] / "outbox")
    base_url: str = "http://localhost:8000"
    temporal_ui_url: str = "http://localhost:8233"
    link_secret: SecretStr = Field(
        default_factory=lambda data: SecretStr(_dev_link_secret(data["data_dir"]))
    )
    staff_email: str = "staff@kmo-dossier.example"
    mail_domain: str = "kmo-dossier.example"
    log_json: bool = False
    # host:port where a worker serves the Temporal SDK's metrics for Prometheus
    # (/metrics); unset: no metrics endpoint.
    metrics_bind: str | None = None
    mail_backend: Literal["outbox", "sendgrid"] = "outbox"
    sendgrid_api_key: SecretStr | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_sandbox: bool = False
    # The Signed Event Webhook's verification key: base64 DER, as SendGrid shows it.
    sendgrid_webhook_public_key: str | None = None
    # The secret last part of the Inbound Parse URL; unset: the webhook is off (404).
    inbound_secret: SecretStr | None = None
    inbound_max_bytes: int = Field(25 * 1024 * 1024, gt=0)
    # The local SMTP listener (`dossier smtp`), always on 127.0.0.1.
    smtp_port: int = 2525

    @field_validator("base_url", "temporal_ui_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def container_domain(self) -> str:
        """The domain where provider containers and dossiers receive mail."""
        return f"containers.{self.mail_domain}"


def _dev_link_secret(data_dir: Any) -> str:
    """Read the dev secret from `<data_dir>/link-secret`, creating it once (0600).

    Production sets DOSSIER_LINK_SECRET; this file only keeps emailed links
    valid across restarts of a development machine. Two processes starting at
    once agree on one secret: only the first write lands.
    """
    directory = Path(data_dir)
    path = directory / LINK_SECRET_FILE
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    directory.mkdir(parents=True, exist_ok=True)
    write_once(path, secrets.token_urlsafe(48).encode("ascii"), mode=0o600)
    return path.read_text(encoding="ascii").strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
