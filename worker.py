"""The worker: registers the dossier workflow and its activities on one task queue.

Run several of these processes to scale out; they share the task queue.
"""

from __future__ import annotations

import asyncio
import sys

import structlog
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.dossier import DossierActivities
from adapters.logging import configure_logging
from adapters.records import make_engine, make_session_factory
from adapters.s3archive import make_archive
from adapters.sendgrid import make_mailer
from adapters.settings import Settings, get_settings
from starter.client import connect
from workflows.dossier import DossierWorkflow
from workflows.sandbox import RUNNER

log = structlog.get_logger(__name__)

# How long a thread may hold the GIL before another waiting one gets it
# (Python's default is 5 ms). Activities render mails and PDFs in threads
# while the event loop thread runs workflow tasks and polls: with 1 ms a
# workflow task waits less behind a CPU-bound activity.
GIL_SWITCH_INTERVAL_SECONDS = 0.001


def build_activities(settings: Settings) -> DossierActivities:
    """The activities on the backends the settings choose."""
    sessions = make_session_factory(make_engine(settings.database_url))
    return DossierActivities(
        settings=settings,
        session_factory=sessions,
        archive=make_archive(settings),
        mailer=make_mailer(settings),
    )


def build_worker(
    client: Client, settings: Settings, activities: DossierActivities | None = None
) -> Worker:
    activities = activities or build_activities(settings)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[DossierWorkflow],
        activities=activities.all_activities(),
        workflow_runner=RUNNER,
    )


def serve_metrics(settings: Settings) -> None:
    """Serve the SDK's metrics for Prometheus at DOSSIER_METRICS_BIND, when set.

    Task latencies, free task slots, sticky cache size and hits, poll results:
    what tells when to add workers. It becomes the process's default Temporal
    runtime, so it must come before the first client connects.
    """
    if not settings.metrics_bind:
        return
    metrics = PrometheusConfig(bind_address=settings.metrics_bind)
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(metrics=metrics)), error_if_already_set=True
    )
    log.info("worker.metrics", bind=settings.metrics_bind)


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    serve_metrics(settings)
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    worker = build_worker(client, settings)
    log.info("worker.started", task_queue=settings.task_queue)
    await worker.run()


def tune_process() -> None:
    """What a worker process sets before it starts: GIL switching, bytecode."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    # The sandbox imports the workflow's module afresh for every workflow the
    # worker starts or replays; without its bytecode in __pycache__ each import
    # compiles the source again (a tenth of the worker's CPU in the bench).
    # PYTHONDONTWRITEBYTECODE would forbid writing it, so the worker allows it;
    # an image whose code is read-only compiles it at build time instead.
    sys.dont_write_bytecode = False


def main() -> None:
    tune_process()
    settings = get_settings()
    configure_logging(json=settings.log_json)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
