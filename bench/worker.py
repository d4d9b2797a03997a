"""The benchmark's other workers: `python -m bench.worker ROLE TASK_QUEUE`.

ROLE `baseline`: the baseline workflow and its empty activity. ROLE
`workflow-only`: the real `DossierWorkflow` on activities with empty bodies.
Same client, data converter, sandbox and process settings as the dossier
worker; only the workflows and activities registered differ.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.worker import Worker

from adapters.settings import get_settings
from bench import workflow_only
from bench.baseline import BaselineWorkflow, noop
from starter.client import connect
from worker import tune_process
from workflows.dossier import DossierWorkflow
from workflows.sandbox import RUNNER

ROLES: dict[str, tuple[type, Sequence[Callable[..., Any]]]] = {
    "baseline": (BaselineWorkflow, [noop]),
    "workflow-only": (DossierWorkflow, workflow_only.all_activities()),
}


async def run(role: str, task_queue: str) -> None:
    workflow, activities = ROLES[role]
    settings = get_settings()
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[workflow],
        activities=activities,
        workflow_runner=RUNNER,
    )
    await worker.run()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ROLES:
        raise SystemExit(f"usage: python -m bench.worker {'|'.join(ROLES)} QUEUE")
    tune_process()
    asyncio.run(run(sys.argv[1], sys.argv[2]))
