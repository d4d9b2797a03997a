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
    """What a measure needs: the client, the settings, the records, the processes."""

    client: Client
    settings: Settings
    sessions: sessionmaker[Session]
    intake: IntakeService
    dossier_workers: list[psutil.Process]
    workflow_only_workers: list[psutil.Process]
    baseline_workers: list[psutil.Process]
    workflow_only_queue: str
    baseline_queue: str
    server: psutil.Process | None  # the dev server, when it could be found

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Every process of the stack by role, for CPU time per role."""
        return {
            "driver": [psutil.Process()],  # this one: intake, signals, polls
            "server": [self.server] if self.server else [],
            "dossier_workers": self.dossier_workers,
            "workflow_only_workers": self.workflow_only_workers,
            "baseline_workers": self.baseline_workers,
        }


@contextlib.asynccontextmanager
async def running_stack(data_dir: Path, workers: int = 1) -> AsyncIterator[Stack]:
    """Dev server, migrated SQLite, `workers` processes of each worker kind.

    The kinds: the dossier worker (`python -m worker`), the dossier workflow
    on empty activities and the baseline (`python -m bench.worker`), each on
    its own task queue.

    Several worker processes on one task queue are how the service scales
    out; here they also let a machine's cores past the first do Python work.
    """
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
        workflow_only_queue = f"bench-workflow-only-{run}"
        baseline_queue = f"bench-baseline-{run}"
        environment = _worker_environment(settings)

        def spawn(*module: str) -> list[subprocess.Popen[bytes]]:
            command = [sys.executable, "-m", *module]
            return [_spawn(command, environment, data_dir, n) for n in range(workers)]

        dossier = spawn("worker")
        workflow_only = spawn("bench.worker", "workflow-only", workflow_only_queue)
        baseline = spawn("bench.worker", "baseline", baseline_queue)
        try:
            await _wait_for_pollers(env.client, settings.task_queue, dossier)
            await _wait_for_pollers(env.client, workflow_only_queue, workflow_only)
            await _wait_for_pollers(env.client, baseline_queue, baseline)
            yield Stack(
                client=env.client,
                settings=settings,
                sessions=sessions,
                intake=intake,
                dossier_workers=[psutil.Process(p.pid) for p in dossier],
                workflow_only_workers=[psutil.Process(p.pid) for p in workflow_only],
                baseline_workers=[psutil.Process(p.pid) for p in baseline],
                workflow_only_queue=workflow_only_queue,
                baseline_queue=baseline_queue,
                server=_dev_server(),
            )
        finally:
            for process in dossier + workflow_only + baseline:
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
    command: list[str], environment: dict[str, str], data_dir: Path, number: int
) -> subprocess.Popen[bytes]:
    """Start a worker process; its log goes to a file beside the data."""
    name = f"{command[-1].replace('.', '-')}-{number}.log"
    log = (data_dir / name).open("ab")
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command,
        cwd=PROJECT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _dev_server() -> psutil.Process | None:
    """The dev server that `WorkflowEnvironment.start_local` started for us."""
    for child in psutil.Process().children(recursive=True):
        try:
            if Path(child.exe()).name == "temporal":
                return child
        except psutil.Error:
            continue
    return None


async def _wait_for_pollers(
    client: Client, task_queue: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Wait until every worker polls its task queue, so the clock starts fair."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    for _ in range(600):
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"worker for {task_queue} exited with code "
                    f"{process.returncode}; see its log in the benchmark's data folder"
                )
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if len({poller.identity for poller in answer.pollers}) >= len(processes):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"not every worker polled {task_queue} within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
