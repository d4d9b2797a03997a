"""`python -m bench.history NAME`: keep a dev-server history for the replay test.

The time-skipping test server knows no custom search attributes, so the
workflow's upserts only show in histories from the dev server. This drives
one happy-path dossier on the benchmark's stack (dev server, real worker)
and writes its history to `tests/workflows/histories/NAME.json`, which
`tests/workflows/test_replay.py` then replays on every run. A kept history
is never overwritten.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

from bench.dossiers import drive_dossier
from bench.stack import PROJECT, running_stack

HISTORIES = PROJECT / "tests" / "workflows" / "histories"


async def record(name: str) -> Path:
    path = HISTORIES / f"{name}.json"
    if path.exists():
        raise SystemExit(f"{path} is kept already; delete it to record it again")
    with tempfile.TemporaryDirectory(prefix="kmo-history-") as folder:
        async with running_stack(Path(folder)) as stack:
            workflow_id = await drive_dossier(stack, f"HIST-{uuid.uuid4().hex[:6]}")
            handle = stack.client.get_workflow_handle(workflow_id)
            history = await handle.fetch_history()
    path.write_text(history.to_json())
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(asyncio.run(record(sys.argv[1])))
