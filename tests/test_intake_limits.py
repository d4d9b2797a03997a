"""Values longer than the records keep are refused at upload, before archiving.

PostgreSQL refuses a string longer than its column. Past the limit the row
failed after the invoice was archived for ten years (a 500 and an orphan), so
intake refuses such an invoice as it refuses any other: 422, nothing kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.archive import LocalArchive
from adapters.records import Dossier
from starter.intake import IntakeError, IntakeService, UploadDetails
from workflows.messages import Participant

INVOICE = Path(__file__).parent / "fixtures" / "invoices" / "training-open-1p.xml"


class NoTemporal:
    async def start_workflow(self, *args, **kwargs) -> None:
        raise AssertionError("no dossier may start")


def invoice(*replacements: tuple[str, str]) -> bytes:
    text = INVOICE.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    return text.encode("utf-8")


@pytest.mark.parametrize(
    ("data", "details", "field", "length"),
    [
        (
            invoice(("Bakkerij Peeters BV", "Bakkerij " + "P" * 208)),
            UploadDetails(),
            "customer.name",
            217,
        ),
        (
            invoice(("Leerhuis Schelde BV", "L" * 201)),
            UploadDetails(),
            "supplier.name",
            201,
        ),
        (
            invoice(),
            UploadDetails(participants=[Participant("A" * 201)]),
            "participants",
            201,
        ),
        (
            invoice(("<cbc:ID>LS-2026-0141</cbc:ID>", f"<cbc:ID>{'9' * 95}</cbc:ID>")),
            UploadDetails(),
            "number",
            106,  # the provider's number, a dash, the invoice number
        ),
    ],
    ids=["client", "provider", "participant", "invoice-number"],
)
async def test_a_value_longer_than_its_column_is_refused_before_anything_is_kept(
    settings, session_factory, data, details, field, length
):
    archive = LocalArchive(settings.archive_dir)
    intake = IntakeService(
        settings, NoTemporal(), session_factory, archive, search_attributes=False
    )

    with pytest.raises(IntakeError) as refused:
        await intake.submit(data, "long.xml", "application/xml", details)

    assert refused.value.status_code == 422
    [problem] = [p for p in refused.value.problems if p.code == "too_long"]
    assert problem.field == field
    assert f"{length} characters" in problem.message
    assert not settings.archive_dir.exists() or not any(
        settings.archive_dir.rglob("*.xml")
    )
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dossier)) == 0


async def test_names_at_the_limit_are_kept(settings, session_factory):
    """200 characters is what the records keep: accepted."""
    archive = LocalArchive(settings.archive_dir)

    class Started:
        async def start_workflow(self, *args, **kwargs) -> None:
            return None

    intake = IntakeService(
        settings, Started(), session_factory, archive, search_attributes=False
    )

    result = await intake.submit(
        invoice(("Bakkerij Peeters BV", "B" * 200)),
        "limit.xml",
        "application/xml",
        UploadDetails(participants=[Participant("A" * 200)]),
    )

    with session_factory() as session:
        row = session.get_one(Dossier, result.dossier_id)
    assert row.client_name == "B" * 200
