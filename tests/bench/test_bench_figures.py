"""The benchmark's own arithmetic: percentiles, the baseline's plan, verdicts."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from bench.baseline import BaselinePlan
from bench.dossiers import client_number, plan_from_history
from bench.measures import percentile
from bench.report import TARGETS
from kmo import enterprise

SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
TIMER = EventType.EVENT_TYPE_TIMER_STARTED
SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED


def history(*kinds: int) -> WorkflowHistory:
    return WorkflowHistory(
        "wf", [HistoryEvent(event_id=n, event_type=k) for n, k in enumerate(kinds, 1)]
    )


def test_percentile_is_the_nearest_rank():
    """p95 of 1..100 is 95 and p50 of four values is the second."""
    assert percentile([float(n) for n in range(100, 0, -1)], 0.95) == 95.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.50) == 2.0


def test_the_plan_splits_activities_at_timers_and_counts_early_signals():
    """Two activities, a timer, one activity: signals but the timer's come ahead."""
    events = history(SIGNALED, SIGNALED, SCHEDULED, SCHEDULED, TIMER, SIGNALED)
    events.events.append(HistoryEvent(event_id=7, event_type=SCHEDULED))

    assert plan_from_history(events) == BaselinePlan(
        activities_per_wait=[2], activities_after=1, signals_ahead=2
    )


def test_targets_pass_on_the_right_side_of_their_limit():
    """The ratio must reach 0.8; latency, events and memory must stay below."""
    assert TARGETS["ratio"].passes(0.8)
    assert not TARGETS["ratio"].passes(0.79)
    assert TARGETS["p95"].passes(299.9)
    assert not TARGETS["p95"].passes(300)
    assert TARGETS["events"].passes(199)
    assert not TARGETS["memory"].passes(1024)


def test_each_benchmark_invoice_goes_to_a_client_with_a_valid_number():
    """The client's enterprise number passes the mod-97 check and varies."""
    numbers = {client_number(f"IN-run-{index:05d}") for index in range(50)}

    assert all(enterprise.is_valid(number) for number in numbers)
    assert len(numbers) == 50


async def test_the_signed_pdf_measure_renders_archives_and_records(
    settings, session_factory
):
    """Each round leaves the signed terms' HTML, PDF and evidence, on record."""
    from types import SimpleNamespace

    from sqlalchemy import select

    from adapters.records import ArchiveItem
    from bench.measures import signed_pdf

    figures = await signed_pdf(
        SimpleNamespace(settings=settings, sessions=session_factory), 2
    )

    assert figures["renders"] == 2
    assert figures["median_ms"] > 0
    with session_factory() as session:
        items = session.scalars(select(ArchiveItem)).all()
    kinds = sorted(item.content_type for item in items)
    assert kinds == sorted(["application/json", "application/pdf", "text/html"] * 2)
    pdfs = [i for i in items if i.content_type == "application/pdf"]
    assert all(
        (settings.archive_dir / item.key).read_bytes().startswith(b"%PDF-")
        for item in pdfs
    )


def test_cpu_per_run_is_each_roles_difference_over_the_runs():
    from bench.measures import _per_run

    before = {"driver": 1.0, "server": 10.0, "dossier_workers": 5.0}
    after = {"driver": 1.5, "server": 13.0, "dossier_workers": 5.0}
    assert _per_run(before, after, 10) == {
        "driver": 50.0,
        "server": 300.0,
        "dossier_workers": 0.0,
    }


def test_the_table_shows_cpu_per_run_by_process_without_idle_roles():
    from bench.report import _cpu_rows

    flow = {
        "workers": 2,
        "cpu_ms_per_dossier": {"driver": 20.0, "server": 200.0, "dossier_workers": 300},
        "cpu_ms_per_baseline_run": {
            "driver": 15.0,
            "server": 150.0,
            "dossier_workers": 0.0,
            "baseline_workers": 90.0,
        },
        "cores_busy_dossiers": 1.9,
        "cores_busy_baseline": 1.8,
    }
    dossier, baseline = _cpu_rows(flow)  # a run from before the middle phase
    assert dossier[0] == "CPU ms per happy-path dossier (2 workers, cores busy 1.9)"
    assert dossier[1] == "520 (driver 20, server 200, dossier workers 300)"
    assert baseline[1] == "255 (driver 15, server 150, baseline workers 90)"
    assert _cpu_rows({"ratio": 0.5}) == []

    flow["cpu_ms_per_workflow_only_run"] = {
        "driver": 16.0,
        "server": 160.0,
        "workflow_only_workers": 100.0,
    }
    flow["cores_busy_workflow_only"] = 1.7
    rows = _cpu_rows(flow)
    assert [row[0] for row in rows] == [
        "CPU ms per happy-path dossier (2 workers, cores busy 1.9)",
        "CPU ms per workflow-only run (2 workers, cores busy 1.7)",
        "CPU ms per baseline run (2 workers, cores busy 1.8)",
    ]
    assert rows[1][1] == "276 (driver 16, server 160, workflow only workers 100)"


def test_the_table_shows_the_workflow_only_phase_where_it_was_measured():
    from bench.report import _if_measured

    flow = {"workflow_only_per_minute": 400.0, "ratio_workflow_only": 0.9}
    label = "ratio workflow on empty activities / baseline"
    assert _if_measured(flow, "ratio_workflow_only", label) == [
        ("ratio workflow on empty activities / baseline", "0.9", "", "")
    ]
    assert _if_measured({"ratio": 0.4}, "ratio_workflow_only", label) == []
