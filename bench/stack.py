"""The stack under measure: dev server, database, workers, all in one temp folder.

The dossier worker runs as its own process (`python -m worker`, configured
through DOSSIER_* variables as in production), so that its memory is its own
and it does not share an event loop with the benchmark driving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.archive import LocalArchive
from adapters.records import make_engine, make_session_factory, upgrade_database
from adapters.settings import Settings
from starter.client import DATA_CONVERTER
from starter.intake import IntakeService
from workflows.search import ALL as SEARCH_ATTRIBUTES

PROJECT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
WORKER_STOP_SECONDS = 30


@dataclass
class Stack:
    """What a measure needs: the client, the settings, the records, the workers."""

    client: Client
    settings: Settings
    sessions: sessionmaker[Session]
    intake: IntakeService
    dossier_worker: psutil.Process
    baseline_queue: str


@contextlib.asynccontextmanager
async def running_stack(data_dir: Path) -> AsyncIterator[Stack]:
    """Dev server, migrated SQLite, the dossier worker and the baseline worker."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    async with env:
        address = env.client.service_client.config.target_host
        run = uuid.uuid4().hex[:8]
        settings = Settings(
            data_dir=data_dir,
            temporal_address=address,
            task_queue=f"bench-dossiers-{run}",
        )
        upgrade_database(settings.database_url)
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)
        intake = IntakeService(
            settings, env.client, sessions, LocalArchive(settings.archive_dir)
        )
        baseline_queue = f"bench-baseline-{run}"
        environment = _worker_environment(settings)
        dossier = _spawn([sys.executable, "-m", "worker"], environment, data_dir)
        baseline = _spawn(
            [sys.executable, "-m", "bench.worker", baseline_queue],
            environment,
            data_dir,
        )
        try:
            await _wait_for_pollers(env.client, settings.task_queue, dossier)
            await _wait_for_pollers(env.client, baseline_queue, baseline)
            yield Stack(
                client=env.client,
                settings=settings,
                sessions=sessions,
                intake=intake,
                dossier_worker=psutil.Process(dossier.pid),
                baseline_queue=baseline_queue,
            )
        finally:
            for process in (dossier, baseline):
                _stop(process)
            engine.dispose()


def _worker_environment(settings: Settings) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        {
            "DOSSIER_DATA_DIR": str(settings.data_dir),
            "DOSSIER_DATABASE_URL": settings.database_url,
            "DOSSIER_TEMPORAL_ADDRESS": settings.temporal_address,
            "DOSSIER_TASK_QUEUE": settings.task_queue,
            "DOSSIER_LOG_JSON": "true",
            "PYTHONPATH": str(PROJECT),
        }
    )
    return environment


def _spawn(
    command: list[str], environment: dict[str, str], data_dir: Path
) -> subprocess.Popen[bytes]:
    """Start a worker process; its log goes to a file beside the data."""
    log = (data_dir / f"{command[-1].replace('.', '-')}.log").open("ab")
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command,
        cwd=PROJECT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _wait_for_pollers(
    client: Client, task_queue: str, process: subprocess.Popen[bytes]
) -> None:
    """Wait until the worker polls its task queue, so the clock starts fair."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(
                f"worker for {task_queue} exited with code {process.returncode}; "
                "see its log in the benchmark's data folder"
            )
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if answer.pollers:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no worker polled {task_queue} within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
