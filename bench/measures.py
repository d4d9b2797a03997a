"""The measures, each on the running stack; every function returns plain figures."""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import ActivityEnvironment

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import OutboxMailer
from adapters.records import Message, save_dossier
from bench.dossiers import (
    PARTICIPANT,
    drive_baseline,
    drive_dossier,
    driven_dossier,
    invoice_bytes,
    plan_from_history,
    start_dossier,
    upload_and_time_first_mail,
    upload_details,
)
from bench.stack import Stack
from kmo.rules import retention_until
from starter.client import workflow_id
from starter.intake import prepare
from web import signing
from workflows.messages import CertificateInput, DossierInput

MB = 1024 * 1024
WORKER_CACHE_DEFAULT = 1000  # Worker(max_cached_workflows=...), not set by worker.py
SETTLE_SECONDS = 3.0
OPEN_TIMEOUT_SECONDS = 1800


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with `share` at or below."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


async def in_parallel(
    count: int, concurrency: int, job: Callable[[int], Awaitable[Any]]
) -> list[Any]:
    """Run `job(0..count-1)` with at most `concurrency` at once; results in order."""
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> Any:
        async with limit:
            return await job(index)

    return await asyncio.gather(*(one(index) for index in range(count)))


async def intake_to_first_mail(
    stack: Stack, run: str, uploads: int, concurrency: int
) -> dict[str, Any]:
    """Upload `uploads` invoices; seconds from submit to each dossier's first mail."""
    started = time.monotonic()
    latencies = await in_parallel(
        uploads,
        concurrency,
        lambda index: upload_and_time_first_mail(stack, f"IN-{run}-{index:05d}"),
    )
    elapsed = time.monotonic() - started
    return {
        "uploads": uploads,
        "concurrency": concurrency,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
        "uploads_per_second": round(uploads / elapsed, 1),
    }


def history_counts(history: WorkflowHistory) -> dict[str, int]:
    kinds = Counter(event.event_type for event in history.events)
    return {
        "events": len(history.events),
        "activities": kinds[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED],
        "signals": kinds[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED],
        "timers": kinds[EventType.EVENT_TYPE_TIMER_STARTED],
        "workflow_tasks": kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED],
        "search_attribute_upserts": kinds[
            EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        ],
    }


async def happy_path_histories(stack: Stack, run: str) -> dict[str, Any]:
    """One dossier and one baseline run, end to end; their histories' counts."""
    dossier_id = await drive_dossier(stack, f"HP-{run}")
    dossier = await stack.client.get_workflow_handle(dossier_id).fetch_history()
    plan = plan_from_history(dossier)
    baseline_id = await drive_baseline(stack, plan)
    baseline = await stack.client.get_workflow_handle(baseline_id).fetch_history()
    return {
        "dossier": history_counts(dossier),
        "baseline": history_counts(baseline),
        "baseline_plan": asdict(plan),
    }


async def throughput(
    stack: Stack, run: str, count: int, concurrency: int, plan: dict[str, Any]
) -> dict[str, Any]:
    """Runs per minute of three workloads of one shape, one after the other.

    The happy-path dossier; the same dossier workflow on activities with empty
    bodies (`bench.workflow_only`); the baseline. The first against the last
    is the target's ratio; the middle one splits it into what the dossier's
    workflow costs Temporal and what our activities' work costs. Each phase
    also reports the CPU time that every part of the stack spent per run, and
    the cores it kept busy: whether the phase had the machine to itself.
    """
    from bench.baseline import BaselinePlan

    baseline_plan = BaselinePlan(**plan)
    phases = {
        "dossier": lambda index: drive_dossier(stack, f"TP-{run}-{index:05d}"),
        "workflow_only": lambda index: drive_dossier(
            stack, f"WO-{run}-{index:05d}", stack.workflow_only_queue
        ),
        "baseline": lambda _: drive_baseline(stack, baseline_plan),
    }
    per_minute: dict[str, float] = {}
    cpu: dict[str, dict[str, float]] = {}
    busy: dict[str, float] = {}
    for name, job in phases.items():
        before = cpu_seconds(stack)
        started = time.monotonic()
        await in_parallel(count, concurrency, job)
        seconds = time.monotonic() - started
        cpu[name] = _per_run(before, cpu_seconds(stack), count)
        per_minute[name] = count * 60 / seconds
        busy[name] = round(sum(cpu[name].values()) * count / 1000 / seconds, 2)

    return {
        "dossiers": count,
        "concurrency": concurrency,
        "workers": len(stack.dossier_workers),
        "dossiers_per_minute": round(per_minute["dossier"], 1),
        "workflow_only_per_minute": round(per_minute["workflow_only"], 1),
        "baseline_per_minute": round(per_minute["baseline"], 1),
        "ratio": round(per_minute["dossier"] / per_minute["baseline"], 3),
        "ratio_workflow_only": round(
            per_minute["workflow_only"] / per_minute["baseline"], 3
        ),
        "cpu_ms_per_dossier": cpu["dossier"],
        "cpu_ms_per_workflow_only_run": cpu["workflow_only"],
        "cpu_ms_per_baseline_run": cpu["baseline"],
        "cores_busy_dossiers": busy["dossier"],
        "cores_busy_workflow_only": busy["workflow_only"],
        "cores_busy_baseline": busy["baseline"],
    }


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """User and system CPU seconds used so far by each role's processes."""
    used: dict[str, float] = {}
    for role, processes in stack.processes().items():
        used[role] = 0.0
        for process in processes:
            times = process.cpu_times()
            used[role] += times.user + times.system
    return used


def _per_run(
    before: dict[str, float], after: dict[str, float], runs: int
) -> dict[str, float]:
    return {
        role: round((after[role] - before[role]) * 1000 / runs, 1) for role in before
    }


async def render_certificate(stack: Stack, repeat: int) -> dict[str, Any]:
    """Render and archive one participant's certificate PDF, `repeat` times.

    The certificate activity as the worker runs it (WeasyPrint, the local
    archive, the record), called here through Temporal's ActivityEnvironment.
    The first call loads fonts and templates; it is reported apart.
    """
    settings = stack.settings
    activities = DossierActivities(
        settings=settings,
        session_factory=stack.sessions,
        archive=LocalArchive(settings.archive_dir),
        mailer=OutboxMailer(settings.outbox_dir),
    )
    environment = ActivityEnvironment()
    seconds: list[float] = []
    for index in range(repeat):
        dossier = driven_dossier(f"PDF-{uuid.uuid4().hex[:8]}-{index}")
        request = CertificateInput(dossier, PARTICIPANT)
        environment.info = replace(
            environment.info, workflow_id=workflow_id(dossier.dossier_id)
        )
        started = time.perf_counter()
        await environment.run(activities.render_certificate, request)
        seconds.append(time.perf_counter() - started)
    return _render_times(seconds)


async def signed_pdf(stack: Stack, repeat: int) -> dict[str, Any]:
    """Render and archive the signed terms as the signing page does, `repeat` times.

    `web.signing`'s own steps: the terms as the client reads them, then the
    signed PDF with its audit page (WeasyPrint), the HTML, the PDF and the
    evidence JSON written to the local archive and recorded. The first call
    loads fonts and templates; it is reported apart.
    """
    settings = stack.settings
    archive = LocalArchive(settings.archive_dir)
    seconds: list[float] = []
    for index in range(repeat):
        dossier = driven_dossier(f"SIGNED-{uuid.uuid4().hex[:8]}-{index}")
        with stack.sessions.begin() as session:
            save_dossier(session, dossier, workflow_id(dossier.dossier_id))
        facts = signing.Facts(
            dossier_id=dossier.dossier_id,
            workflow_id=workflow_id(dossier.dossier_id),
            provider_id=dossier.provider.provider_id,
            provider_name=dossier.provider.name,
            dv_number=dossier.provider.dv_number,
            invoice_number=dossier.invoice_number,
            client_name=dossier.client.name,
            enterprise_number=dossier.client.enterprise_number,
            is_training=True,
            step="terms",
            created_on=date.today(),
        )
        started = time.perf_counter()
        document = signing.render_document("terms", "nl", facts)
        evidence = {
            "dossier_id": facts.dossier_id,
            "document": "terms",
            "typed_name": PARTICIPANT.name,
            "consent": True,
            "language": "nl",
            "signed_at": datetime.now(UTC).isoformat(),
            "client_ip": "127.0.0.1",
            "user_agent": "bench",
            "document_sha256": hashlib.sha256(document.encode()).hexdigest(),
        }
        await asyncio.to_thread(
            signing._archive_evidence,
            archive,
            stack.sessions,
            facts,
            document,
            evidence,
            retention_until(dossier.start_date),
            f"signed-terms-bench-{index}",
            [],
        )
        seconds.append(time.perf_counter() - started)
    return _render_times(seconds)


def _render_times(seconds: list[float]) -> dict[str, Any]:
    """The first (cold) render apart, then the median and max of the others."""
    warm = seconds[1:] or seconds
    return {
        "renders": len(seconds),
        "first_ms": round(seconds[0] * 1000, 1),
        "median_ms": round(statistics.median(warm) * 1000, 1),
        "max_ms": round(max(warm) * 1000, 1),
    }


def worker_memory(stack: Stack) -> dict[str, float]:
    """The dossier workers' resident memory now and at its peak, in MB, summed."""
    rss = peak = 0.0
    for process in stack.dossier_workers:
        rss += process.memory_info().rss / MB
        status = Path(f"/proc/{process.pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) * 1024 / MB
    return {
        "workers": len(stack.dossier_workers),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(peak, 1) if peak else -1.0,
    }


async def open_dossiers(
    stack: Stack, run: str, target: int, already_open: int, concurrency: int
) -> dict[str, Any]:
    """Start dossiers until `target` are open, all waiting on a reminder timer.

    A dossier waits once its application mail is out: no signal comes, so
    its next wake-up is the reminder timer a week later. These are started
    directly (the intake's input and search attributes, without its parse
    and archive) by a client with a platform account, which skips the
    onboarding mail: only the worker's side is measured here.
    """
    to_open = max(0, target - already_open)
    started = time.monotonic()
    await in_parallel(
        to_open,
        concurrency,
        lambda index: start_dossier(
            stack.client, stack.settings, open_dossier(f"OP-{run}-{index:05d}")
        ),
    )
    submitted = time.monotonic() - started
    waiting = await _wait_for_application_mails(stack, run, target)
    all_waiting = time.monotonic() - started
    await asyncio.sleep(SETTLE_SECONDS)
    return {
        "open_dossiers": waiting,
        "started_for_this_measure": to_open,
        "start_seconds": round(submitted, 1),
        "seconds_until_all_wait": round(all_waiting, 1),
        "worker_cache_size": WORKER_CACHE_DEFAULT,
        **worker_memory(stack),
    }


def open_dossier(number: str) -> DossierInput:
    """An uploaded invoice's dossier, for a client with a platform account."""
    prepared = prepare(invoice_bytes(number), f"{number}.xml", upload_details())
    assert prepared.dossier is not None, prepared.problems
    dossier = prepared.dossier
    return replace(dossier, client=replace(dossier.client, has_platform_account=True))


async def _wait_for_application_mails(stack: Stack, run: str, target: int) -> int:
    deadline = time.monotonic() + OPEN_TIMEOUT_SECONDS
    while True:
        sent = await asyncio.to_thread(_application_mails_sent, stack, run)
        if sent >= target:
            return sent
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sent} of {target} dossiers reached their wait")
        await asyncio.sleep(1)


def _application_mails_sent(stack: Stack, run: str) -> int:
    """Application mails of the uploaded dossiers (IN-, OP-); driven ones close."""
    uploaded = or_(
        Message.dossier_id.like(f"%-in-{run}-%"),
        Message.dossier_id.like(f"%-op-{run}-%"),
    )
    with stack.sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.template == "application", Message.status == "sent")
            .where(uploaded)
        )
    return count or 0
