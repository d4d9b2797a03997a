"""The throughput's middle phase: the dossier workflow on empty activities.

Its figure means something only while it runs the dossier's own workflow in
the dossier's shape: the same activity names and types as the real worker,
and the same counts of activities, signals, timers and workflow tasks.
"""

from __future__ import annotations

import pytest
from temporalio.activity import _Definition

from activities.dossier import DossierActivities
from bench import workflow_only


def definitions(activities) -> dict[str, tuple]:
    found = {}
    for activity in activities:
        definition = _Definition.must_from_callable(activity)
        found[definition.name] = (definition.arg_types, definition.ret_type)
    return found


def test_the_empty_activities_are_the_dossier_activities_by_name_and_type(settings):
    """A new or changed dossier activity fails here until the bench follows."""
    real = DossierActivities(
        settings=settings, session_factory=None, archive=None, mailer=None
    )

    assert definitions(workflow_only.all_activities()) == definitions(
        real.all_activities()
    )


@pytest.mark.e2e
async def test_a_dossier_on_empty_activities_has_the_real_dossiers_shape(tmp_path):
    """Driven alike on both workers, the two histories count the same."""
    from bench.dossiers import drive_dossier
    from bench.measures import history_counts
    from bench.stack import running_stack

    async with running_stack(tmp_path) as stack:
        real_id = await drive_dossier(stack, "SHAPE-REAL")
        empty_id = await drive_dossier(stack, "SHAPE-EMPTY", stack.workflow_only_queue)
        real = await stack.client.get_workflow_handle(real_id).fetch_history()
        empty = await stack.client.get_workflow_handle(empty_id).fetch_history()

    counts = history_counts(empty)
    assert counts == history_counts(real)
    assert counts["activities"] == 20
    assert counts["timers"] == 1
