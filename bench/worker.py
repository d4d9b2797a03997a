"""The baseline's worker process: `python -m bench.worker TASK_QUEUE`.

Same client, data converter and sandbox as the dossier worker; only the
workflow and its empty activity differ.
"""

from __future__ import annotations

import asyncio
import sys

from temporalio.worker import Worker

from adapters.settings import get_settings
from bench.baseline import BaselineWorkflow, noop
from starter.client import connect
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
    asyncio.run(run(sys.argv[1]))
