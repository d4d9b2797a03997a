"""The baseline: a workflow of the dossier's shape with empty bodies.

It runs as many activities, receives as many signals and starts as many
timers as one happy-path dossier, in the same order of waits, but every
activity returns at once and nothing is rendered, stored or mailed. The
ratio of the two throughputs says how much of a dossier's cost is our own
work rather than Temporal's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

ACTIVITY_TIMEOUT = timedelta(minutes=2)
WAIT = timedelta(days=7)  # as long as a dossier's reminder interval


@dataclass
class BaselinePlan:
    """The counts of one happy-path dossier's history, split around its waits.

    `activities_per_wait[i]` activities run before wait `i`; each wait starts
    a timer and ends with one more signal from the driver, which sends
    `signals_ahead` signals right after the start. `activities_after` run
    after the last wait.
    """

    activities_per_wait: list[int]
    activities_after: int
    signals_ahead: int


@dataclass
class NoopInput:
    step: int


@dataclass
class StepSignal:
    number: int


@activity.defn(name="bench_noop")
async def noop(_: NoopInput) -> None:
    """An activity with an empty body."""


@workflow.defn(name="BenchBaseline")
class BaselineWorkflow:
    def __init__(self) -> None:
        self._signals = 0

    @workflow.run
    async def run(self, plan: BaselinePlan) -> int:
        step = 0
        for wait, activities in enumerate(plan.activities_per_wait):
            for _ in range(activities):
                step += 1
                await self._noop(step)
            expected = plan.signals_ahead + wait + 1
            await workflow.wait_condition(
                lambda expected=expected: self._signals >= expected, timeout=WAIT
            )
        for _ in range(plan.activities_after):
            step += 1
            await self._noop(step)
        return step

    async def _noop(self, step: int) -> None:
        await workflow.execute_activity(
            noop, NoopInput(step), start_to_close_timeout=ACTIVITY_TIMEOUT
        )

    @workflow.signal
    def step(self, _: StepSignal) -> None:
        self._signals += 1
