"""The production files in `infra/`: they parse and name only real settings.

No Docker engine runs here, so the compose file is read and checked against
the Compose Specification's JSON Schema (as vendored by check-jsonschema), not
started; the search attribute script runs against Temporal's dev server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adapters.settings import Settings
from workflows.search import ALL as SEARCH_ATTRIBUTES
from workflows.search import NEXT_DEADLINE

PROJECT = Path(__file__).resolve().parents[1]
INFRA = PROJECT / "infra"
VENV_BIN = Path(sys.executable).parent
OUR_IMAGE = "kmo-dossier:"


def compose() -> dict:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return env


def test_compose_has_every_part_of_the_production_stack():
    """Temporal, its UI and database, our database, MinIO, workers, web, metrics."""
    services = set(compose()["services"])

    assert {
        "temporal",
        "temporal-db",
        "temporal-setup",
        "temporal-ui",
        "dossier-db",
        "minio",
        "archive-bucket",
        "migrate",
        "worker",
        "web",
        "proxy",
        "prometheus",
    } <= services


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "check-jsonschema"),
            *("--builtin-schema", "vendor.compose-spec", str(path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_follows_the_compose_specification():
    """Every key is one the Compose Specification knows, with a value of its type."""
    answer = check_compose_schema(INFRA / "docker-compose.yml")

    assert answer.returncode == 0, answer.stdout + answer.stderr


def test_the_schema_check_refuses_a_misspelt_key(tmp_path):
    """The check bites: `depends-on` for `depends_on` is no Compose key."""
    text = (INFRA / "docker-compose.yml").read_text()
    assert "    depends_on:" in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("    depends_on:", "    depends-on:", 1))

    answer = check_compose_schema(broken)

    assert answer.returncode == 1
    assert "depends-on" in answer.stdout + answer.stderr


def promtool_check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.promtool
def test_prometheus_config_passes_promtool():
    """Prometheus's own checker reads the scrape configuration as valid."""
    answer = promtool_check_config(INFRA / "prometheus.yml")

    assert answer.returncode == 0, answer.stdout + answer.stderr


@pytest.mark.promtool
def test_promtool_refuses_a_scrape_interval_that_is_no_duration(tmp_path):
    """The check bites: 'often' is no Prometheus duration."""
    config = yaml.safe_load((INFRA / "prometheus.yml").read_text())
    config.setdefault("global", {})["scrape_interval"] = "often"
    broken = tmp_path / "prometheus.yml"
    broken.write_text(yaml.safe_dump(config))

    answer = promtool_check_config(broken)

    assert answer.returncode != 0
    assert "often" in answer.stdout + answer.stderr


def test_every_dossier_variable_in_compose_is_a_setting():
    """Each DOSSIER_* name in compose is a field of Settings, so none is ignored."""
    fields = set(Settings.model_fields)
    unknown = {
        f"{name}: {variable}"
        for name, service in compose()["services"].items()
        for variable in environment(service)
        if variable.startswith("DOSSIER_")
        and variable.removeprefix("DOSSIER_").lower() not in fields
    }

    assert unknown == set()


def test_our_services_are_configured_only_through_dossier_variables():
    """Worker, web and migrate get no variable the service would not read."""
    ours = {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("image", "")).startswith(OUR_IMAGE)
    }
    foreign = {
        f"{name}: {variable}"
        for name, service in ours.items()
        for variable in environment(service)
        if not variable.startswith("DOSSIER_")
    }

    assert set(ours) == {"migrate", "worker", "web"}
    assert foreign == set()


def test_the_archive_bucket_is_made_with_object_lock():
    """The bucket job creates the service's bucket with Object Lock switched on."""
    services = compose()["services"]
    bucket = environment(services["worker"])["DOSSIER_S3_BUCKET"]
    script = " ".join(services["archive-bucket"]["entrypoint"])

    assert f"mc mb --ignore-existing --with-lock archive/{bucket}" in script


def test_prometheus_scrapes_the_port_the_workers_serve_metrics_on():
    """The scrape job's port is the one in the workers' DOSSIER_METRICS_BIND."""
    bind = environment(compose()["services"]["worker"])["DOSSIER_METRICS_BIND"]
    prometheus = yaml.safe_load((INFRA / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}

    assert jobs["dossier-worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert (
        str(jobs["dossier-worker"]["dns_sd_configs"][0]["port"])
        == (bind.rpartition(":")[2])
    )


def test_the_script_registers_the_search_attributes_the_workflow_uses():
    """search-attributes.sh creates exactly workflows/search.py's names and types."""
    lines = (INFRA / "temporal" / "search-attributes.sh").read_text().splitlines()
    created = {tuple(line.split()[1:3]) for line in lines if line.startswith("create ")}

    assert created == {
        (key.name, "Datetime" if key is NEXT_DEADLINE else "Keyword")
        for key in SEARCH_ATTRIBUTES
    }


@pytest.mark.e2e
def test_the_script_registers_them_on_a_temporal_server_and_can_run_again():
    """Run twice against the dev server, the five attributes exist once."""
    port = _free_port()
    server = subprocess.Popen(
        [str(VENV_BIN / "temporal"), "server", "start-dev", "--headless"]
        + ["--port", str(port), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
    }
    script = str(INFRA / "temporal" / "search-attributes.sh")
    try:
        first = subprocess.run(
            ["sh", script], env=env, capture_output=True, text=True, timeout=120
        )
        second = subprocess.run(
            ["sh", script], env=env, capture_output=True, text=True, timeout=120
        )
        listed = _search_attributes(port)
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "NextDeadline exists" in second.stdout
    assert listed >= {
        ("DossierStep", "Keyword"),
        ("DossierKind", "Keyword"),
        ("ProviderId", "Keyword"),
        ("ClientEnterpriseNumber", "Keyword"),
        ("NextDeadline", "Datetime"),
    }


def _search_attributes(port: int) -> set[tuple[str, str]]:
    answer = subprocess.run(
        [str(VENV_BIN / "temporal"), "operator", "search-attribute", "list"]
        + ["--address", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return {
        (parts[0], parts[1])
        for parts in (line.split() for line in answer.stdout.splitlines())
        if len(parts) == 2
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
