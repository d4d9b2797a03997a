"""Temporal workflows. Deterministic: no I/O, time from `workflow.now()`."""
