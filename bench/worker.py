"""The baseline's worker process: `python -m bench.worker TASK_QUEUE`.

Same client, data converter, sandbox and process settings as the dossier
worker; only the workflow and its empty activity differ.
"""

from __future__ import annotations

import asyncio
import sys

from temporalio.worker import Worker

from adapters.settings import get_settings
from bench.baseline import BaselineWorkflow, noop
from starter.client import connect
from worker import tune_process
from workflows.sandbox import RUNNER


async def run(task_queue: str) -> None:
    settings = get_settings()
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineWorkflow],
        activities=[noop],
        workflow_runner=RUNNER,
    )
    await worker.run()


if __name__ == "__main__":
    tune_process()
    asyncio.run(run(sys.argv[1]))
