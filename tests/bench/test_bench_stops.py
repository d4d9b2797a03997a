"""A benchmark stopped by a signal leaves no process and no folder behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_stopped_bench_shuts_its_stack_down(tmp_path, stop):
    """Its dev server and workers end, its temporary folder goes, it says so."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=PROJECT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert bench.stdout is not None
        for line in bench.stdout:  # the stack is up once the first measure runs
            if line.startswith("-- intake to first mail"):
                break
        stack = psutil.Process(bench.pid).children(recursive=True)
        assert len(stack) >= 4  # dev server and three kinds of worker
        assert list(tmp_path.glob("kmo-bench-*"))

        bench.send_signal(stop)
        output = bench.communicate(timeout=90)[0]
    finally:
        if bench.poll() is None:
            bench.kill()

    assert bench.returncode == 1, output
    assert "stopped: the stack is shut down" in output
    deadline = time.monotonic() + 10
    while any(p.is_running() and p.status() != "zombie" for p in stack):
        assert time.monotonic() < deadline, [p.cmdline() for p in stack]
        time.sleep(0.2)
    assert list(tmp_path.glob("kmo-bench-*")) == []
