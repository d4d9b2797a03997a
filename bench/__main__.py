"""`python -m bench [--quick] [--uploads N] [--dossiers N] [--open N] [--workers N]`.

Runs every measure on one stack, in this order: intake latency (its dossiers
stay open), one happy path and its baseline, throughput (dossiers, the dossier
workflow on empty activities, the baseline), the certificate
PDF, then uploads until the open dossiers reach `--open` and reads the
worker's memory. Prints a table and the JSON; saves the JSON in
`bench/results/latest.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from bench import measures
from bench.report import header, machine, revision, save, table, verdicts
from bench.stack import running_stack

QUICK = {"uploads": 50, "dossiers": 20, "open": 300, "pdfs": 5}
# The full run opens the 10,000 dossiers the memory target names (about nine
# minutes of the run's twelve on a 2-core machine); the worker's cache holds
# 1,000 of them, and the memory per cached dossier extrapolates to all 10,000
# cached (see the report).
FULL = {"uploads": 1000, "dossiers": 100, "open": 10_000, "pdfs": 20}
EXTRAPOLATE_TO = 10_000
T = TypeVar("T")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""

    def read(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"{number} is less than {minimum}")
        return number

    return read


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    one = at_least(1)
    parser.add_argument("--quick", action="store_true", help="a small run, ~1 min")
    parser.add_argument("--uploads", type=one, help="uploads timed to first mail")
    parser.add_argument("--dossiers", type=one, help="dossiers driven to the end")
    parser.add_argument("--open", type=at_least(0), help="open dossiers for the memory")
    parser.add_argument("--pdfs", type=one, help="certificate PDFs rendered")
    parser.add_argument(
        "--intake-concurrency", type=one, default=1, help="uploads at once"
    )
    parser.add_argument(
        "--concurrency", type=one, default=20, help="dossiers driven at once"
    )
    parser.add_argument(
        "--open-concurrency", type=one, default=16, help="starts at once to open"
    )
    parser.add_argument(
        "--workers",
        type=one,
        default=1,
        help="worker processes, as many for the dossiers as for the baseline",
    )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    started = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kmo-bench-") as folder:
        async with running_stack(Path(folder), args.workers) as stack:
            idle = measures.worker_memory(stack)
            _phase("intake to first mail")
            intake = await measures.intake_to_first_mail(
                stack, run_id, args.uploads, args.intake_concurrency
            )
            _phase("one happy path and its baseline")
            history = await measures.happy_path_histories(stack, run_id)
            _phase("throughput")
            flow = await measures.throughput(
                stack, run_id, args.dossiers, args.concurrency, history["baseline_plan"]
            )
            _phase("certificate PDF")
            pdf = await measures.render_certificate(stack, args.pdfs)
            _phase("signed PDF")
            signed = await measures.signed_pdf(stack, args.pdfs)
            _phase("open dossiers and worker memory")
            memory = await measures.open_dossiers(
                stack, run_id, args.open, args.uploads, args.open_concurrency
            )
    memory.update(_extrapolated(idle["rss_mb"], memory))
    result_measures = {
        "intake": intake,
        "history": history,
        "throughput": flow,
        "pdf": pdf,
        "signed_pdf": signed,
        "worker_idle": idle,
        "memory": memory,
    }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "revision": revision(),
        "arguments": vars(args),
        "seconds": round(time.monotonic() - started, 1),
        # Other processes on the machine share its cores: the figures are
        # only comparable between runs at a similar load.
        "load_average_1_5_15_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "measures": result_measures,
        "targets": verdicts(result_measures),
    }


def _extrapolated(idle_mb: float, memory: dict[str, Any]) -> dict[str, float]:
    """Memory per dossier in the worker's cache, and what 10,000 cached would use.

    An estimate, not a measure: it assumes RSS grows linearly with cached
    dossiers, from the idle worker to a full cache.
    """
    cache = memory["worker_cache_size"] * memory["workers"]
    cached = min(memory["open_dossiers"], cache)
    per_cached = (memory["rss_mb"] - idle_mb) / cached if cached else 0.0
    return {
        "mb_per_cached_dossier": round(per_cached, 3),
        "estimated_rss_mb_10000_cached": round(idle_mb + per_cached * EXTRAPOLATE_TO),
    }


async def stopped_cleanly(measure: Coroutine[Any, Any, T]) -> T:
    """Run `measure`; SIGTERM or SIGHUP cancel it as Ctrl-C does.

    Cancelled, the stack's context managers stop the workers and the dev
    server and remove the temporary folder, rather than leaving them behind.
    """
    task = asyncio.ensure_future(measure)
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(stop, task.cancel)
    return await task


def _phase(name: str) -> None:
    print(f"-- {name}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    # The product's per-event logs would drown the report; warnings still show.
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    try:
        result = asyncio.run(stopped_cleanly(run(args)))
    except asyncio.CancelledError:
        raise SystemExit(
            "stopped: the stack is shut down and its folder removed"
        ) from None
    path = save(result)
    print()
    print(header(result))
    print()
    print(table(result))
    print()
    print(json.dumps(result, indent=2, sort_keys=True))
    print(f"\nsaved to {path}")


if __name__ == "__main__":
    main()
