"""The machine, the targets and the table: what `python -m bench` prints and saves."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

from bench.stack import VENV_BIN

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    name: str
    unit: str
    limit: float
    at_least: bool  # True: the measure must reach the limit; False: stay below

    def passes(self, measured: float) -> bool:
        return measured >= self.limit if self.at_least else measured < self.limit

    def describe(self) -> str:
        return f"{'>=' if self.at_least else '<'} {self.limit:g} {self.unit}".strip()


TARGETS = {
    "ratio": Target("throughput ratio dossier / baseline", "", 0.8, at_least=True),
    "p95": Target("intake to first mail, p95", "ms", 300, at_least=False),
    "events": Target("history events per dossier", "", 200, at_least=False),
    "memory": Target("worker memory, open dossiers", "MB", 1024, at_least=False),
}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": _temporal_version(),
    }


def revision() -> str:
    """The commit measured, marked `+dirty` when the working tree had changes."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def _git(*args: str) -> str:
    answer = subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return answer.stdout.strip()


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _temporal_version() -> str:
    try:
        answer = subprocess.run(  # noqa: S603 - the CLI installed beside Python
            [str(VENV_BIN / "temporal"), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return answer.stdout.strip()


def verdicts(measures: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measure and PASS or MISS."""
    rows = []
    figures = {
        "ratio": measures["throughput"]["ratio"],
        "p95": measures["intake"]["p95_ms"],
        "events": measures["history"]["dossier"]["events"],
        "memory": measures["memory"]["rss_mb"],
    }
    for key, measured in figures.items():
        target = TARGETS[key]
        rows.append(
            {
                "target": target.name,
                "limit": target.describe(),
                "measured": measured,
                "verdict": "PASS" if target.passes(measured) else "MISS",
            }
        )
    return rows


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table, targets beside the measures they judge."""
    m = result["measures"]
    intake, history = m["intake"], m["history"]
    flow, pdf, memory = m["throughput"], m["pdf"], m["memory"]
    verdict = {row["target"]: row for row in result["targets"]}

    def judged(key: str) -> tuple[str, str]:
        row = verdict[TARGETS[key].name]
        return row["limit"], row["verdict"]

    rows = [
        (
            f"intake to first mail, p50 ({intake['uploads']} uploads, "
            f"{intake['concurrency']} at once)",
            f"{intake['p50_ms']} ms",
            "",
            "",
        ),
        ("intake to first mail, p95", f"{intake['p95_ms']} ms", *judged("p95")),
        ("intake to first mail, max", f"{intake['max_ms']} ms", "", ""),
        (
            f"happy-path dossiers per minute ({flow['dossiers']}, "
            f"{flow['concurrency']} at once)",
            f"{flow['dossiers_per_minute']}",
            "",
            "",
        ),
        *_if_measured(
            flow,
            "workflow_only_per_minute",
            "dossier workflow on empty activities, per minute",
        ),
        (
            "baseline runs per minute (same shape)",
            f"{flow['baseline_per_minute']}",
            "",
            "",
        ),
        ("ratio dossier / baseline", f"{flow['ratio']}", *judged("ratio")),
        *_if_measured(
            flow, "ratio_workflow_only", "ratio workflow on empty activities / baseline"
        ),
        *_cpu_rows(flow),
        (
            "history events per dossier (happy path)",
            f"{history['dossier']['events']}",
            *judged("events"),
        ),
        ("history events per baseline run", f"{history['baseline']['events']}", "", ""),
        (
            "worker RSS, idle after start",
            f"{m['worker_idle']['rss_mb']} MB",
            "",
            "",
        ),
        (
            f"worker RSS, {memory['open_dossiers']} open dossiers "
            f"({_workers(memory)}cache {memory['worker_cache_size']})",
            f"{memory['rss_mb']} MB",
            *judged("memory"),
        ),
        ("worker peak RSS over the whole run", f"{memory['peak_rss_mb']} MB", "", ""),
        (
            "estimate: 10,000 dossiers all in the cache (linear from the above)",
            f"{memory['estimated_rss_mb_10000_cached']} MB",
            "",
            "",
        ),
        (
            "certificate PDF rendered and archived, median",
            f"{pdf['median_ms']} ms",
            "",
            "",
        ),
        ("certificate PDF, first (cold)", f"{pdf['first_ms']} ms", "", ""),
    ]
    signed = m.get("signed_pdf")  # runs before this measure have none
    if signed:
        rows += [
            (
                "signed terms PDF (audit page) rendered and archived, median",
                f"{signed['median_ms']} ms",
                "",
                "",
            ),
            ("signed terms PDF, first (cold)", f"{signed['first_ms']} ms", "", ""),
        ]
    lines = ["| measure | value | target | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def _if_measured(
    flow: dict[str, Any], key: str, label: str
) -> list[tuple[str, str, str, str]]:
    """A row for `flow[key]`; none for a run from before that figure existed."""
    return [(label, f"{flow[key]}", "", "")] if key in flow else []


def _cpu_rows(flow: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """CPU milliseconds per run by process, for each phase a run measured."""
    rows = []
    for label, key, busy in (
        ("per happy-path dossier", "cpu_ms_per_dossier", "cores_busy_dossiers"),
        (
            "per workflow-only run",
            "cpu_ms_per_workflow_only_run",
            "cores_busy_workflow_only",
        ),
        ("per baseline run", "cpu_ms_per_baseline_run", "cores_busy_baseline"),
    ):
        if key not in flow:
            continue
        cpu = flow[key]
        parts = ", ".join(
            f"{role.replace('_', ' ')} {ms:g}" for role, ms in cpu.items() if ms
        )
        rows.append(
            (
                f"CPU ms {label} ({_workers(flow)}cores busy {flow[busy]:g})",
                f"{sum(cpu.values()):.0f} ({parts})",
                "",
                "",
            )
        )
    return rows


def _workers(figures: dict[str, Any]) -> str:
    count = figures.get("workers", 1)
    return f"{count} workers, " if count > 1 else ""


def header(result: dict[str, Any]) -> str:
    """When, on what and at what load the figures were measured."""
    m = result["machine"]
    return "\n".join(
        [
            f"{result['date']}, revision {result['revision']}, {result['seconds']} s",
            f"{m['cpu']}, {m['cores_logical']} logical cores, {m['memory_gb']} GB, "
            f"{m['os']}",
            f"Python {m['python']}, temporalio {m['temporalio']}, {m['temporal_cli']}",
            "load average (1, 5, 15 min) before "
            f"{result['load_average_1_5_15_before']}, after "
            f"{result['load_average_1_5_15_after']}",
        ]
    )


def save(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path
