"""Recorded histories of finished dossiers replay on today's workflow code.

A change to DossierWorkflow that would break dossiers already running fails
here. Record new histories with `RECORD_HISTORIES=1 make test` (see README).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from starter.client import DATA_CONVERTER
from workflows.dossier import (
    FEWER_COMMANDS_PATCH,
    FOLLOW_UP_PATCH,
    FRESH_LINKS_PATCH,
    WAIT_TO_PUBLISH_PATCH,
    DossierWorkflow,
)
from workflows.sandbox import RUNNER

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    """The history replays without a non-determinism error."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[DossierWorkflow],
        data_converter=DATA_CONVERTER,
        workflow_runner=RUNNER,
    )
    await replayer.replay_workflow(history)


def test_histories_of_both_kinds_are_kept():
    """At least one training and one advice history are in the repository."""
    names = [p.stem for p in HISTORIES]
    assert any(n.startswith("training") for n in names)
    assert any(n.startswith("advice") for n in names)


def patches_taken(path: Path) -> set[str]:
    """The ids of the patches whose new branch the recorded run took."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    taken = set()
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_patch":
            [payload] = marker.details["patch-data"].payloads
            taken.add(json.loads(payload.data)["id"])
    return taken


@pytest.mark.parametrize("kind", ["training", "advice"])
def test_a_history_of_each_kind_takes_every_current_patch(kind: str):
    """Each kind has a history recorded with every patch, besides older ones."""
    current = {
        FOLLOW_UP_PATCH,
        FRESH_LINKS_PATCH,
        FEWER_COMMANDS_PATCH,
        WAIT_TO_PUBLISH_PATCH,
    }
    taken = {p.stem: patches_taken(p) for p in HISTORIES if p.stem.startswith(kind)}

    assert any(current <= patches for patches in taken.values()), taken
    assert any(not patches for patches in taken.values()), taken
