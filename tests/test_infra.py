"""The production files in `infra/`: they parse, fit together, name real things.

No Docker engine runs here, so nothing in `infra/` is started. The compose file
is checked against the Compose Specification's JSON Schema (as vendored by
check-jsonschema) and `prometheus.yml` with promtool; then read the way Compose
reads it (interpolated with the values the README's steps export) for what a
schema cannot see: dependencies, volumes, durations, ports, addresses, our
services' settings and commands, and what Prometheus scrapes. The search
attribute script runs against Temporal's dev server. Each check of that reading
comes with cases showing it refuses the mistakes it is for, on copies in
tmp_path.
"""

from __future__ import annotations

import ast
import importlib
import ipaddress
import json
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml
from docker.utils.ports import split_port
from typer.exceptions import TyperException

from adapters.settings import Settings
from starter.cli import app as dossier_app
from workflows.search import ALL as SEARCH_ATTRIBUTES
from workflows.search import NEXT_DEADLINE

PROJECT = Path(__file__).resolve().parents[1]
INFRA = PROJECT / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
PROMETHEUS_FILE = INFRA / "prometheus.yml"
README = PROJECT / "README.md"
VENV_BIN = Path(sys.executable).parent
OUR_IMAGE = "kmo-dossier:"


def compose(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return env


def broken_copy(tmp_path: Path, original: Path, old: str, new: str) -> Path:
    """A copy of `original` in tmp_path with the first `old` replaced by `new`."""
    text = original.read_text()
    assert old in text, f"{old!r} is no longer in {original.name}: update the case"
    copy = tmp_path / original.name
    copy.write_text(text.replace(old, new, 1))
    return copy


# --- interpolation, as Compose does it -----------------------------------
# `$$` is a literal `$`; `$NAME` and `${NAME}` read a variable; `${NAME<op>word}`
# reads it with op `:-` or `-` (word is the default), `:?` or `?` (required,
# word is the message) or `:+` or `+` (word when set); the colon forms treat an
# empty value as unset. A word may hold `${...}` itself. Compose refuses a `${`
# left open or holding anything else.

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BRACED = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>.*))?", re.DOTALL
)


@dataclass(frozen=True)
class Variable:
    name: str
    op: str = ""
    word: str = ""

    @property
    def has_default(self) -> bool:
        return self.op in (":-", "-", ":+", "+")


def tokens(text: str) -> Iterator[str | Variable]:
    """The text as Compose reads it: literal pieces and the variables between them.

    ValueError for a `${...}` Compose refuses.
    """
    i = 0
    while (dollar := text.find("$", i)) != -1:
        yield text[i:dollar]
        after = text[dollar + 1 : dollar + 2]
        if after == "$":
            yield "$"
            i = dollar + 2
        elif after == "{":
            end = _closing_brace(text, dollar + 2)
            inside = BRACED.fullmatch(text, dollar + 2, end)
            if inside is None:
                raise ValueError(f"${{{text[dollar + 2 : end]}}} is no variable")
            yield Variable(inside["name"], inside["op"] or "", inside["word"] or "")
            i = end + 1
        elif name := NAME.match(text, dollar + 1):
            yield Variable(name[0])
            i = name.end()
        else:  # a lone `$` stays as it is
            yield "$"
            i = dollar + 1
    yield text[i:]


def _closing_brace(text: str, start: int) -> int:
    """Where the `}` closing a `${` is, `${...}` inside it skipped."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def variables(text: str) -> list[Variable]:
    """Every variable a string reads, those inside another's word included."""
    found = []
    for token in tokens(text):
        if isinstance(token, Variable):
            found += [token, *variables(token.word)]
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    return "".join(
        token if isinstance(token, str) else _value(token, env)
        for token in tokens(text)
    )


def _value(variable: Variable, env: Mapping[str, str]) -> str:
    value = env.get(variable.name)
    given = value is not None if variable.op in ("-", "?", "+") else bool(value)
    if variable.op in (":-", "-"):
        return value if given else interpolate(variable.word, env)
    if variable.op in (":+", "+"):
        return interpolate(variable.word, env) if given else ""
    if variable.op in (":?", "?") and not given:
        raise ValueError(f"{variable.name} is not set: {variable.word}")
    return value or ""


def strings(tree) -> Iterator[str]:
    """Every string value in a parsed YAML tree (Compose interpolates values)."""
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from strings(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from strings(value)


def interpolated(tree, env: Mapping[str, str]):
    if isinstance(tree, str):
        return interpolate(tree, env)
    if isinstance(tree, dict):
        return {key: interpolated(value, env) for key, value in tree.items()}
    if isinstance(tree, list):
        return [interpolated(value, env) for value in tree]
    return tree


# --- the README's steps --------------------------------------------------


def production_section() -> str:
    text = README.read_text()
    start = text.index("## Production (`infra/`)")
    return text[start : text.find("\n## ", start)]


def readme_exports() -> dict[str, str]:
    """NAME=value of each `export` in the section's shell steps (its examples)."""
    steps = "".join(re.findall(r"```sh\n(.*?)```", production_section(), re.DOTALL))
    exports = "\n".join(
        line for line in steps.splitlines() if line.startswith("export ")
    )
    return dict(re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S*)", exports))


def compose_as_run(path: Path = COMPOSE_FILE) -> dict:
    """The compose file as Compose runs it for an operator who followed the README."""
    return interpolated(compose(path), readme_exports())


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


# --- what only shows at the first `docker compose up` --------------------


def test_every_interpolation_is_well_formed():
    """Each `${...}` in the compose file is one Compose accepts."""
    assert interpolation_problems(compose()) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("${WORKER_REPLICAS:-2}", "${WORKER_REPLICAS:-2"),
        ("${WEB_REPLICAS:-2}", "${WEB REPLICAS:-2}"),
        ("${CADDY_VERSION:-2}", "${CADDY_VERSION:=2}"),
    ],
    ids=["unclosed", "space-in-name", "unknown-operator"],
)
def test_the_interpolation_check_refuses_a_malformed_variable(tmp_path, old, new):
    broken = broken_copy(tmp_path, COMPOSE_FILE, old, new)

    assert interpolation_problems(compose(broken))


def interpolation_problems(data: dict) -> list[str]:
    problems = []
    for text in strings(data):
        try:
            variables(text)
        except ValueError as error:
            problems.append(str(error))
    return problems


def test_compose_requires_exactly_what_the_readme_exports():
    """What has no default is what the steps export; unset, compose refuses to start.

    A variable without a default must say so (`${VAR:?message}`): a bare
    `${VAR}` would run with an empty value. Every variable, with a default or
    not, is named in the README's section.
    """
    assert required_variable_problems(compose()) == []


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            "${SENDGRID_API_KEY:?set SENDGRID_API_KEY}",
            "${SENDGRID_KEY:?set SENDGRID_KEY}",
            "SENDGRID_KEY",
        ),
        (
            "https://${PUBLIC_HOST:?set PUBLIC_HOST to this host's DNS name}",
            "${PUBLIC_URL:-http://localhost}",
            "PUBLIC_URL",
        ),
        (
            "${DOSSIER_LINK_SECRET:?set DOSSIER_LINK_SECRET}",
            "${DOSSIER_LINK_SECRET}",
            "DOSSIER_LINK_SECRET",
        ),
    ],
    ids=["renamed-secret", "localhost-default", "bare-variable"],
)
def test_the_variable_check_refuses_what_the_readme_does_not_say(
    tmp_path, old, new, says
):
    broken = broken_copy(tmp_path, COMPOSE_FILE, old, new)

    assert says in " ".join(required_variable_problems(compose(broken)))


def required_variable_problems(data: dict) -> list[str]:
    read = [variable for text in strings(data) for variable in variables(text)]
    bare = {v.name for v in read if v.op == ""}
    required = {v.name for v in read if v.op in (":?", "?")}
    exported = set(readme_exports())
    named = set(re.findall(r"[A-Z][A-Z0-9_]+", production_section()))
    return [
        *(f"{name} would run empty when unset: give a default or :?" for name in bare),
        *(
            f"{name} is required but the README does not export it"
            for name in required - exported
        ),
        *(
            f"{name} is exported by the README but not required"
            for name in exported - required
        ),
        *(
            f"{name} is not named in the README"
            for name in {v.name for v in read} - named
        ),
    ]


def test_every_dependency_exists_and_can_be_met():
    """`depends_on` names services; one waited on healthy has a healthcheck, one
    waited on to complete runs once, and no service waits on itself."""
    assert dependency_problems(compose()["services"]) == []


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (
            "      temporal-setup:\n        condition",
            "      temporal-setpu:\n        condition",
            "no service",
        ),
        (
            '    healthcheck:\n      test: ["CMD-SHELL", "pg_isready -U temporal"]\n'
            "      interval: 5s\n      retries: 20\n",
            "",
            "no healthcheck",
        ),
        (
            'get_settings().database_url)\n    restart: "no"',
            "get_settings().database_url)\n    restart: unless-stopped",
            "restarts",
        ),
        (
            "condition: service_healthy\n    environment:\n      <<: *dossier-env\n"
            "    command:\n      - python",
            "condition: service_healthy\n      worker:\n"
            "        condition: service_started\n    environment:\n"
            "      <<: *dossier-env\n    command:\n      - python",
            "cycle",
        ),
    ],
    ids=["missing-service", "no-healthcheck", "one-shot-restarts", "cycle"],
)
def test_the_dependency_check_refuses_what_cannot_start(tmp_path, old, new, says):
    broken = broken_copy(tmp_path, COMPOSE_FILE, old, new)

    assert says in " ".join(dependency_problems(compose(broken)["services"]))


def depends_on(service: dict) -> dict[str, str]:
    """A service's dependencies and the condition it waits for on each."""
    needs = service.get("depends_on") or {}
    if isinstance(needs, list):
        return dict.fromkeys(needs, "service_started")
    return {
        name: (how or {}).get("condition", "service_started")
        for name, how in needs.items()
    }


def has_healthcheck(service: dict) -> bool:
    check = service.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable", False)


def runs_once(service: dict) -> bool:
    restart = service.get("restart", "no")
    return restart in ("no", False) or str(restart).startswith("on-failure")


def dependency_problems(services: dict) -> list[str]:
    problems = []
    for name, service in services.items():
        for needed, condition in depends_on(service).items():
            if needed not in services:
                problems.append(f"{name} depends on {needed}, which is no service")
            elif condition == "service_healthy" and not has_healthcheck(
                services[needed]
            ):
                problems.append(f"{name} waits for {needed} healthy: no healthcheck")
            elif condition == "service_completed_successfully" and not runs_once(
                services[needed]
            ):
                problems.append(f"{name} waits for {needed} to end, but it restarts")
    graph = {name: set(depends_on(service)) for name, service in services.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        problems.append(f"dependency cycle: {' -> '.join(error.args[1])}")
    return problems


def test_named_volumes_are_declared_and_bind_mounts_exist():
    """Each named volume a service mounts is declared; each mounted file is there."""
    assert volume_problems(compose()) == []


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("- caddy:/data", "- caddy-data:/data", "not declared"),
        ("- ./prometheus.yml:", "- ./prometheus.yaml:", "no file"),
    ],
    ids=["undeclared-volume", "missing-file"],
)
def test_the_volume_check_refuses_what_compose_cannot_mount(tmp_path, old, new, says):
    broken = broken_copy(tmp_path, COMPOSE_FILE, old, new)

    assert says in " ".join(volume_problems(compose(broken)))


def volume_problems(data: dict, base: Path = INFRA) -> list[str]:
    """Bind sources are relative to `base`, the real compose file's folder."""
    declared = set(data.get("volumes") or {})
    problems = []
    for name, service in data["services"].items():
        for mount in service.get("volumes") or []:
            if isinstance(mount, dict):  # the long syntax
                kind, source = mount.get("type"), mount.get("source")
            else:
                source, _, target = mount.partition(":")
                if not target:
                    continue  # an anonymous volume
                kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            if kind == "volume" and source not in declared:
                problems.append(f"{name} mounts volume {source}: not declared")
            if kind == "bind" and not (base / Path(source).expanduser()).exists():
                problems.append(f"{name} mounts {source}: no file there")
    return problems


# Compose reads durations with Go's time.ParseDuration: numbers with units.
DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
HEALTHCHECK_DURATIONS = ("interval", "timeout", "start_period", "start_interval")


def test_durations_parse():
    """Healthcheck intervals, timeouts and start periods, and stop grace periods."""
    assert duration_problems(compose()["services"]) == []


@pytest.mark.parametrize("bad", ["often", "5", "5 s", "1d"])
def test_the_duration_check_refuses_what_is_no_duration(tmp_path, bad):
    broken = broken_copy(tmp_path, COMPOSE_FILE, "interval: 5s", f"interval: {bad}")

    assert duration_problems(compose(broken)["services"])


def duration_problems(services: dict) -> list[str]:
    problems = []
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        found = {
            f"healthcheck {key}": check[key]
            for key in HEALTHCHECK_DURATIONS
            if key in check
        }
        if "stop_grace_period" in service:
            found["stop_grace_period"] = service["stop_grace_period"]
        for key, value in found.items():
            if not (isinstance(value, str) and DURATION.fullmatch(value)):
                problems.append(f"{name}: {key} {value!r} is no duration")
    return problems


def test_ports_parse_and_do_not_clash():
    """Each `ports` and `expose` entry is one Docker reads, with ports 1-65535;
    no host port is published twice; a replicated service publishes none."""
    assert port_problems(compose_as_run()["services"]) == []


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('"127.0.0.1:9001:9001"', '"9001:9001:9001"', "9001:9001:9001"),
        ('"127.0.0.1:9090:9090"', '"127.0.0.1:90900:9090"', "65535"),
        ('"127.0.0.1:9090:9090"', '"80:9090"', "both publish"),
        ('    expose:\n      - "8000"', '    ports:\n      - "8000:8000"', "replicas"),
    ],
    ids=["nonsense", "out-of-range", "clash", "replicated"],
)
def test_the_port_check_refuses_what_docker_cannot_bind(tmp_path, old, new, says):
    broken = broken_copy(tmp_path, COMPOSE_FILE, old, new)

    assert says in " ".join(port_problems(compose_as_run(broken)["services"]))


def parse_port(entry) -> tuple[list[int], list[tuple[str, int]]]:
    """The container ports and host (address, port) bindings of a port entry.

    ValueError when Docker would refuse it (docker-py's reading of its syntax).
    """
    if isinstance(entry, dict):  # the long syntax
        parts = (entry.get("host_ip"), entry.get("published"), entry["target"])
        entry = ":".join(str(part) for part in parts if part)
    inside, outside = split_port(str(entry))
    ports = [int(port.partition("/")[0]) for port in inside]
    bindings = []
    for binding in outside or []:
        address, port = binding if isinstance(binding, tuple) else ("", binding)
        if address:
            ipaddress.ip_address(address)
        if port:
            bindings.append((address, int(port)))
    for port in ports + [port for _, port in bindings]:
        if not 0 < port <= 65535:
            raise ValueError(f"port {port} is not within 1-65535")
    return ports, bindings


def port_problems(services: dict) -> list[str]:
    problems = []
    publisher: dict[tuple[str, int], str] = {}
    for name, service in services.items():
        replicas = int((service.get("deploy") or {}).get("replicas", 1))
        for entry in service.get("expose") or []:
            try:
                if parse_port(entry)[1]:
                    problems.append(f"{name}: expose {entry!r} names a host port")
            except ValueError as error:
                problems.append(f"{name}: expose {entry!r}: {error}")
        for entry in service.get("ports") or []:
            try:
                bindings = parse_port(entry)[1]
            except ValueError as error:
                problems.append(f"{name}: port {entry!r}: {error}")
                continue
            for address, port in bindings:
                if (address, port) in publisher:
                    other = publisher[(address, port)]
                    problems.append(f"{other} and {name} both publish host port {port}")
                publisher[(address, port)] = name
                if replicas > 1:
                    problems.append(f"{name}: {replicas} replicas on host port {port}")
    return problems


# Where a service serves Prometheus metrics, read from its environment: our
# worker's SDK at DOSSIER_METRICS_BIND (tests/test_worker_metrics.py), the
# Temporal server at PROMETHEUS_ENDPOINT. Both answer on /metrics only.
METRICS_BINDS = ("DOSSIER_METRICS_BIND", "PROMETHEUS_ENDPOINT")
METRICS_PATH = "/metrics"


def metrics_bind(service: dict) -> tuple[str, int] | None:
    for variable in METRICS_BINDS:
        if bind := environment(service).get(variable):
            host, _, port = str(bind).rpartition(":")
            return host, int(port)
    return None


def served_ports(service: dict) -> set[int]:
    """The container ports it declares (`ports`, `expose`) or serves metrics on."""
    ports = set()
    for entry in (service.get("ports") or []) + (service.get("expose") or []):
        try:
            ports.update(parse_port(entry)[0])
        except ValueError:
            pass  # port_problems says so
    if bind := metrics_bind(service):
        ports.add(bind[1])
    return ports


def test_addresses_name_a_service_and_a_port_it_serves():
    """Each host:port or URL a service is given (environment, command) that
    names a compose service names a port that service declares; a name without
    a dot that is no service (`localhost` too) cannot be reached from a container."""
    assert address_problems(compose_as_run()["services"]) == []


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("@dossier-db:5432/", "@dossierdb:5432/", "dossierdb"),
        (
            "DOSSIER_TEMPORAL_ADDRESS: temporal:7233",
            "DOSSIER_TEMPORAL_ADDRESS: localhost:7233",
            "localhost",
        ),
        (
            "DOSSIER_S3_ENDPOINT_URL: http://minio:9000",
            "DOSSIER_S3_ENDPOINT_URL: http://minio:900",
            "minio:900,",
        ),
        ('"--to", "web:8000"', '"--to", "web:8080"', "web:8080"),
    ],
    ids=["no-such-service", "localhost", "wrong-port", "wrong-port-in-command"],
)
def test_the_address_check_refuses_what_no_service_answers(tmp_path, old, new, says):
    broken = broken_copy(tmp_path, COMPOSE_FILE, old, new)

    assert says in " ".join(address_problems(compose_as_run(broken)["services"]))


ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9.-]+):(?P<port>\d+)")
DEFAULT_PORTS = {"http": 80, "https": 443}


def address_in(value: str) -> tuple[str, int] | None:
    if "://" in value:
        url = urlsplit(value)
        port = url.port or DEFAULT_PORTS.get(url.scheme)
        return (url.hostname, port) if url.hostname and port else None
    if match := ADDRESS.fullmatch(value):
        return match["host"], int(match["port"])
    return None


def given_values(service: dict) -> Iterator[tuple[str, str]]:
    """(where, value) of its environment and of its command's arguments."""
    for variable, value in environment(service).items():
        yield variable, str(value)
    for key in ("command", "entrypoint"):
        if isinstance(service.get(key), list):
            yield from ((key, str(argument)) for argument in service[key])


# Where staff's browsers go (through their tunnel), not where a container
# connects: these may name the host's loopback.
BROWSER_URLS = {"DOSSIER_TEMPORAL_UI_URL", "TEMPORAL_CORS_ORIGINS"}


def address_problems(services: dict) -> list[str]:
    problems = []
    for name, service in services.items():
        for where, value in given_values(service):
            if where in BROWSER_URLS or (address := address_in(value)) is None:
                continue
            host, port = address
            if host in services:
                if port not in served_ports(services[host]):
                    problems.append(
                        f"{name}: {where} names {host}:{port}, but {host} serves "
                        f"{sorted(served_ports(services[host]))}"
                    )
            elif "." not in host:
                problems.append(f"{name}: {where} names {host}, which is no service")
    return problems


@pytest.mark.parametrize("name", ["migrate", "worker", "web"])
def test_our_services_get_the_production_settings(name, monkeypatch):
    """PostgreSQL, the S3 archive, SendGrid, https links to a public name, and
    none of the settings whose defaults only fit one machine left at them."""
    service = compose_as_run()["services"][name]

    assert production_problems(settings_in(environment(service), monkeypatch)) == []


def test_the_settings_check_refuses_a_service_without_the_shared_block(
    tmp_path, monkeypatch
):
    """`web` without `<<: *dossier-env` would run on SQLite and the outbox."""
    broken = broken_copy(
        tmp_path,
        COMPOSE_FILE,
        "    environment:\n      <<: *dossier-env\n    # Only Caddy",
        '    environment:\n      DOSSIER_LOG_JSON: "true"\n    # Only Caddy',
    )
    web = compose_as_run(broken)["services"]["web"]

    problems = " ".join(production_problems(settings_in(environment(web), monkeypatch)))

    for setting in ("database_url", "archive_backend", "mail_backend", "base_url"):
        assert setting in problems


def settings_in(env: Mapping[str, str], monkeypatch) -> Settings:
    """The settings a container with this environment (and no other) reads."""
    for name in list(os.environ):
        if name.startswith("DOSSIER_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return Settings()


# Settings whose defaults fit one machine only: each must be set, to another value.
ONE_MACHINE_DEFAULTS = (
    "database_url",
    "temporal_address",
    "base_url",
    "temporal_ui_url",
    "mail_domain",
    "link_secret",
)


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def production_problems(settings: Settings) -> list[str]:
    problems = [
        f"{field} is left at its one-machine default"
        for field in ONE_MACHINE_DEFAULTS
        if field not in settings.model_fields_set
        or getattr(settings, field) == Settings.model_fields[field].default
    ]
    if not settings.database_url.startswith("postgresql"):
        problems.append(f"database_url {settings.database_url} is no PostgreSQL")
    if settings.archive_backend != "s3":
        problems.append(f"archive_backend is {settings.archive_backend}, not s3")
    if settings.mail_backend != "sendgrid":
        problems.append(f"mail_backend is {settings.mail_backend}, not sendgrid")
    base = urlsplit(settings.base_url)
    if base.scheme != "https" or is_loopback(base.hostname) or "." not in base.netloc:
        problems.append(f"base_url {settings.base_url} is no public https address")
    return problems


def test_our_commands_name_what_exists():
    """`python -m` a module of this project, `python -c` code whose imports
    exist, `dossier <command>` the typer app accepts with its options: in each
    service of our image, its `CMD` healthchecks and the Dockerfile's CMD."""
    problems = [
        f"{where}: {problem}"
        for where, argv in our_commands(compose_as_run()).items()
        for problem in command_problems(argv)
    ]

    assert problems == []


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('"-m", "worker"', '"-m", "workers"', "workers"),
        ('"dossier", "web"', '"dossier", "serve"', "no such command"),
        ('"--forwarded-allow-ips"', '"--forwarded-allowed-ips"', "forwarded-allowed"),
        ('"--port", "8000"', '"--port", "eight"', "eight"),
        (
            "from adapters.records import",
            "from adapters.record import",
            "adapters.record",
        ),
        ("import upgrade_database", "import upgrade_databases", "upgrade_databases"),
        (
            "upgrade_database(get_settings()",
            "upgrade_database(get_settings(()",
            "python -c",
        ),
    ],
    ids=["module", "command", "option", "option-value", "import", "name", "syntax"],
)
def test_the_command_check_refuses_what_does_not_exist(tmp_path, old, new, says):
    broken = broken_copy(tmp_path, COMPOSE_FILE, old, new)

    problems = [
        problem
        for argv in our_commands(compose_as_run(broken)).values()
        for problem in command_problems(argv)
    ]

    assert says in " ".join(problems)


def our_commands(data: dict) -> dict[str, list[str]]:
    commands = {}
    for name, service in data["services"].items():
        if not str(service.get("image", "")).startswith(OUR_IMAGE):
            continue
        if command := service.get("command"):
            commands[name] = (
                shlex.split(command) if isinstance(command, str) else command
            )
        test = (service.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test[0] == "CMD":
            commands[f"{name} healthcheck"] = test[1:]
    cmd = [
        line
        for line in (INFRA / "Dockerfile").read_text().splitlines()
        if line.startswith("CMD ")
    ]
    commands["Dockerfile CMD"] = json.loads(cmd[-1].removeprefix("CMD "))
    return commands


def command_problems(argv: list[str]) -> list[str]:
    match argv:
        case ["python", "-m", module, *_]:
            return module_problems(module)
        case ["python", "-c", code, *_]:
            return code_problems(code)
        case ["dossier", *arguments]:
            return dossier_problems(arguments)
    return [f"{shlex.join(argv)}: none of python -m, python -c, dossier"]


def module_problems(module: str) -> list[str]:
    """`python -m module` in the image's /app: a file of this project with a main."""
    path = PROJECT.joinpath(*module.split("."))
    script = path / "__main__.py" if path.is_dir() else path.with_suffix(".py")
    if not script.exists():
        return [f"python -m {module}: no {script.relative_to(PROJECT)} here"]
    if (
        script.name != "__main__.py"
        and '__name__ == "__main__"' not in script.read_text()
    ):
        return [f"python -m {module}: {script.name} has no __main__ block"]
    return []


def code_problems(code: str) -> list[str]:
    """`python -c code`: it parses, and what it imports exists."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        return [f"python -c does not parse: {error}"]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            wanted = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in wanted:
            try:
                found = importlib.import_module(module)
            except ImportError as error:
                problems.append(f"python -c imports {module}: {error}")
                continue
            if name and not hasattr(found, name):
                problems.append(f"python -c imports {name} from {module}: not there")
    return problems


def dossier_problems(arguments: list[str]) -> list[str]:
    """`dossier ...`: the typer app has the command and accepts its arguments."""
    group = typer.main.get_command(dossier_app)
    name, *rest = arguments or [""]
    command = group.commands.get(name)
    if command is None:
        return [
            f"dossier {name}: no such command ({', '.join(sorted(group.commands))})"
        ]
    try:
        command.make_context(f"dossier {name}", list(rest))
    except TyperException as error:
        return [f"dossier {shlex.join(arguments)}: {error.format_message()}"]
    return []


def test_the_migrate_command_migrates_a_database(tmp_path):
    """migrate's command as written, in its environment, on SQLite (not PostgreSQL)."""
    database = tmp_path / "dossier.db"

    answer = run_migrate(compose_as_run(), database)

    assert answer.returncode == 0, answer.stderr
    with sqlite3.connect(database) as connection:
        tables = {
            row[0] for row in connection.execute("SELECT name FROM sqlite_master")
        }
    assert "alembic_version" in tables


def test_running_migrate_refuses_a_typo_no_import_shows(tmp_path):
    broken = broken_copy(
        tmp_path,
        COMPOSE_FILE,
        "get_settings().database_url",
        "get_settings().databse_url",
    )

    answer = run_migrate(compose_as_run(broken), tmp_path / "dossier.db")

    assert answer.returncode != 0
    assert "databse_url" in answer.stderr


def run_migrate(data: dict, database: Path) -> subprocess.CompletedProcess[str]:
    migrate = data["services"]["migrate"]
    argv = migrate["command"]
    assert argv[0] == "python"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("DOSSIER_")
    }
    env |= {name: str(value) for name, value in environment(migrate).items()}
    env |= {
        "DOSSIER_DATABASE_URL": f"sqlite:///{database}",
        "DOSSIER_DATA_DIR": str(database.parent),
    }
    return subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_prometheus_scrapes_what_the_services_serve():
    """Each scrape target names a compose service, the port it serves metrics on
    (from its environment) and the path it serves them at."""
    prometheus = yaml.safe_load(PROMETHEUS_FILE.read_text())

    assert scrape_problems(prometheus, compose_as_run()["services"]) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "says"),
    [
        (PROMETHEUS_FILE, '"temporal:8000"', '"temporal:9000"', "8000"),
        (PROMETHEUS_FILE, '"temporal:8000"', '"temporal"', "no port"),
        (
            PROMETHEUS_FILE,
            "  - job_name: temporal-server\n",
            "  - job_name: temporal-server\n    metrics_path: /metric\n",
            "/metric",
        ),
        (PROMETHEUS_FILE, 'names: ["worker"]', 'names: ["workers"]', "no service"),
        (COMPOSE_FILE, "PROMETHEUS_ENDPOINT:", "PROMETHEUS_ENDPIONT:", "no metrics"),
        (COMPOSE_FILE, "BIND: 0.0.0.0:9464", "BIND: 127.0.0.1:9464", "loopback"),
    ],
    ids=["port", "no-port", "path", "service", "server-metrics-off", "loopback"],
)
def test_the_scrape_check_refuses_what_prometheus_cannot_reach(
    tmp_path, file, old, new, says
):
    broken = broken_copy(tmp_path, file, old, new)
    prometheus_file = broken if file == PROMETHEUS_FILE else PROMETHEUS_FILE
    compose_file = broken if file == COMPOSE_FILE else COMPOSE_FILE
    prometheus = yaml.safe_load(prometheus_file.read_text())

    problems = scrape_problems(prometheus, compose_as_run(compose_file)["services"])

    assert says in " ".join(problems)


def scrape_targets(job: dict) -> list[str]:
    """host:port of the job's static targets and DNS names (an A record each)."""
    return [
        *(
            target
            for static in job.get("static_configs", [])
            for target in static["targets"]
        ),
        *(
            f"{name}:{dns.get('port', '')}"
            for dns in job.get("dns_sd_configs", [])
            for name in dns["names"]
        ),
    ]


def scrape_problems(prometheus: dict, services: dict) -> list[str]:
    problems = []
    for job in prometheus["scrape_configs"]:
        where = job["job_name"]
        unchecked = [
            key
            for key in job
            if key.endswith("_sd_configs") and key != "dns_sd_configs"
        ]
        problems += [f"{where}: {key} is not checked here" for key in unchecked]
        path = job.get("metrics_path", METRICS_PATH)
        if path != METRICS_PATH:
            problems.append(f"{where}: metrics_path {path}, served at {METRICS_PATH}")
        for target in scrape_targets(job):
            host, _, port = target.rpartition(":")
            if not host or not port.isdigit():
                problems.append(f"{where}: {target} has no port (Prometheus takes 80)")
            elif host not in services:
                problems.append(f"{where}: {host} is no service")
            elif (bind := metrics_bind(services[host])) is None:
                problems.append(f"{where}: {host} serves no metrics")
            elif int(port) != bind[1]:
                problems.append(f"{where}: {target}, but {host} serves on {bind[1]}")
            elif is_loopback(bind[0]):
                problems.append(f"{where}: {host} serves on loopback only")
    return problems


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
