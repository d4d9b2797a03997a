"""The workflow sandbox every worker and replayer uses.

`kmo` holds pure programme rules and the Belgian holiday table, computed at
import; it is shared with the worker rather than reloaded per workflow.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)

RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("kmo")
)
