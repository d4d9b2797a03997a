"""The worker's Prometheus endpoint, switched on by DOSSIER_METRICS_BIND.

The SDK runtime is process-wide, so each case runs in its own interpreter.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

PROJECT = Path(__file__).resolve().parents[1]
SERVE = (
    "import time, worker; from adapters.settings import Settings; "
    "worker.serve_metrics(Settings()); print('serving', flush=True); time.sleep(60)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(tmp_path: Path, bind: str | None) -> subprocess.Popen[str]:
    environment = {**os.environ, "DOSSIER_DATA_DIR": str(tmp_path)}
    environment.pop("DOSSIER_METRICS_BIND", None)
    if bind:
        environment["DOSSIER_METRICS_BIND"] = bind
    return subprocess.Popen(
        [sys.executable, "-c", SERVE],
        cwd=PROJECT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_until_serving(process: subprocess.Popen[str]) -> None:
    """Read the child's output (its log lines come first) up to 'serving'."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == "serving":
            return
    raise AssertionError(f"the child exited with {process.wait()} before serving")


def _metrics_answer(url: str, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.1)
    return None


def test_metrics_are_served_where_the_setting_says(tmp_path):
    """With DOSSIER_METRICS_BIND set, /metrics answers 200 on that address."""
    bind = f"127.0.0.1:{_free_port()}"
    process = _serve(tmp_path, bind)
    try:
        _wait_until_serving(process)
        assert _metrics_answer(f"http://{bind}/metrics", seconds=10) == 200
    finally:
        process.kill()
        process.wait()


def test_no_metrics_endpoint_without_the_setting(tmp_path):
    """Without DOSSIER_METRICS_BIND nothing listens: the default stays closed."""
    port = _free_port()
    process = _serve(tmp_path, None)
    try:
        _wait_until_serving(process)
        assert _metrics_answer(f"http://127.0.0.1:{port}/metrics", seconds=1) is None
    finally:
        process.kill()
        process.wait()


def test_dossier_worker_serves_metrics_too(tmp_path, dev_env, task_queue):
    """`dossier worker`, connected to the dev server, answers /metrics as well."""
    bind = f"127.0.0.1:{_free_port()}"
    environment = {
        **os.environ,
        "DOSSIER_DATA_DIR": str(tmp_path),
        "DOSSIER_METRICS_BIND": bind,
        "DOSSIER_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DOSSIER_TASK_QUEUE": task_queue,
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dossier"), "worker"],
        cwd=PROJECT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answer = _metrics_answer(f"http://{bind}/metrics", seconds=30)
        assert answer == 200
        assert process.poll() is None  # still running: it reached Temporal
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.e2e
async def test_a_working_worker_exposes_what_the_readme_says_to_watch(
    tmp_path, monkeypatch
):
    """After one dossier on `python -m worker`, /metrics parses as Prometheus text
    and holds the sticky cache, schedule-to-start latency and completions, per
    task queue."""
    from prometheus_client.parser import text_string_to_metric_families

    from bench.dossiers import drive_dossier
    from bench.stack import running_stack

    bind = f"127.0.0.1:{_free_port()}"
    monkeypatch.setenv("DOSSIER_METRICS_BIND", bind)  # the worker's environment
    async with running_stack(tmp_path) as stack:
        await drive_dossier(stack, "METRICS-1")
        body = httpx.get(f"http://{bind}/metrics", timeout=10).text
        queue = stack.settings.task_queue

    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert families["temporal_sticky_cache_size"].type == "gauge"
    latency = families["temporal_workflow_task_schedule_to_start_latency"]
    assert latency.type == "histogram"
    assert families["temporal_worker_task_slots_available"].type == "gauge"
    completed = [
        sample.value
        for sample in families["temporal_workflow_completed"].samples
        if sample.labels.get("task_queue") == queue
    ]
    assert completed == [1]
