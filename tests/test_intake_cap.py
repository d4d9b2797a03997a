"""The annual-cap warning at intake, computed over the client's recorded dossiers."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.archive import LocalArchive
from starter.intake import IntakeService, UploadDetails

FIXTURES = Path(__file__).parent / "fixtures" / "invoices"
CLIENT = b"0433221103"  # Drukkerij De Smet BV, the advice fixture's client


class NoTemporal:
    """Stands in for the Temporal client: intake's start is not under test."""

    async def start_workflow(self, *args, **kwargs) -> None:
        return None


def invoice_of_the_same_client(name: str, *replacements: tuple[bytes, bytes]) -> bytes:
    data = (FIXTURES / name).read_bytes()
    for old, new in replacements:
        data = data.replace(old, new)
    return data


@pytest.fixture
def intake(settings, session_factory) -> IntakeService:
    archive = LocalArchive(settings.archive_dir)
    return IntakeService(
        settings, NoTemporal(), session_factory, archive, search_attributes=False
    )


async def submit(intake: IntakeService, name: str, data: bytes) -> list[str]:
    result = await intake.submit(data, name, "application/xml", UploadDetails())
    return [w.code for w in result.warnings]


async def test_third_dossier_of_a_year_takes_the_client_over_the_cap(intake):
    """3,060.00 + 4,350.00 in 2026 is under EUR 7,500; 118.50 more goes over."""
    advice = (FIXTURES / "advice-cyber-6m.xml").read_bytes()  # 2026: 3,060.00
    welding = invoice_of_the_same_client(  # moved into 2026: 4,350.00
        "training-incompany-10p-12m.xml",
        (b"0604567841", CLIENT),
        (b"2027-01-11", b"2026-01-12"),
        (b"2027-12-13", b"2026-12-14"),
    )
    excel = invoice_of_the_same_client(  # 2026: 118.50
        "training-open-1p.xml", (b"0511223355", CLIENT)
    )

    first = await submit(intake, "advice.xml", advice)
    second = await submit(intake, "welding.xml", welding)
    third = await submit(intake, "excel.xml", excel)

    assert "annual_cap_exceeded" not in first
    assert "annual_cap_exceeded" not in second
    assert "annual_cap_exceeded" in third


async def test_other_years_and_other_clients_do_not_count(intake):
    """The welding course of 2027 and another client's dossier leave 2026 alone."""
    await submit(intake, "advice.xml", (FIXTURES / "advice-cyber-6m.xml").read_bytes())
    welding_2027 = invoice_of_the_same_client(
        "training-incompany-10p-12m.xml", (b"0604567841", CLIENT)
    )
    await submit(intake, "welding.xml", welding_2027)

    excel = await submit(
        intake, "excel.xml", invoice_of_the_same_client("training-open-1p.xml")
    )
    same_client_excel = await submit(
        intake,
        "excel-2.xml",
        invoice_of_the_same_client(
            "training-open-1p.xml",
            (b"0511223355", CLIENT),
            (b"LS-2026-0141", b"LS-2026-0142"),
        ),
    )

    assert "annual_cap_exceeded" not in excel
    assert "annual_cap_exceeded" not in same_client_excel


class CountingArchive(LocalArchive):
    """The local archive, counting the objects read back."""

    reads = 0

    def get(self, key: str) -> bytes:
        self.reads += 1
        return super().get(key)


async def two_dossiers_of_the_client(intake: IntakeService) -> None:
    """The first test's advice and welding course: 7,410.00 in 2026."""
    await submit(intake, "advice.xml", (FIXTURES / "advice-cyber-6m.xml").read_bytes())
    await submit(
        intake,
        "welding.xml",
        invoice_of_the_same_client(
            "training-incompany-10p-12m.xml",
            (b"0604567841", CLIENT),
            (b"2027-01-11", b"2026-01-12"),
            (b"2027-12-13", b"2026-12-14"),
        ),
    )


def excel_of_the_same_client() -> bytes:
    return invoice_of_the_same_client("training-open-1p.xml", (b"0511223355", CLIENT))


@pytest.fixture
def counted(settings, session_factory) -> tuple[IntakeService, CountingArchive]:
    """Intake on an archive that counts its reads."""
    archive = CountingArchive(settings.archive_dir)
    intake = IntakeService(
        settings, NoTemporal(), session_factory, archive, search_attributes=False
    )
    return intake, archive


async def test_the_cap_takes_earlier_dossiers_from_the_records_not_the_archive(
    counted,
):
    """With the figures on record, the third upload reads no earlier invoice."""
    intake, archive = counted
    await two_dossiers_of_the_client(intake)
    archive.reads = 0

    warnings = await submit(intake, "excel.xml", excel_of_the_same_client())

    assert "annual_cap_exceeded" in warnings
    assert archive.reads == 0


async def test_a_dossier_recorded_before_the_figures_counts_through_its_invoice(
    counted, session_factory
):
    """Rows from before migration 0003 (no start date) are read from the archive."""
    from sqlalchemy import update

    from adapters.records import Dossier

    intake, archive = counted
    await two_dossiers_of_the_client(intake)
    with session_factory.begin() as session:
        session.execute(update(Dossier).values(start_date=None, expected_subsidy=None))
    archive.reads = 0

    warnings = await submit(intake, "excel.xml", excel_of_the_same_client())

    assert "annual_cap_exceeded" in warnings
    assert archive.reads == 2


@pytest.mark.parametrize("outcome", ["cancelled", "lapsed"])
async def test_a_cancelled_or_lapsed_dossier_takes_no_part_of_the_cap(
    intake, session_factory, outcome
):
    """Without the advice's 3,060.00 the client stays under the cap."""
    from sqlalchemy import update

    from adapters.records import Dossier

    await two_dossiers_of_the_client(intake)
    with session_factory.begin() as session:
        session.execute(
            update(Dossier).where(Dossier.kind == "advice").values(outcome=outcome)
        )

    warnings = await submit(intake, "excel.xml", excel_of_the_same_client())

    assert "annual_cap_exceeded" not in warnings


class RecordingTemporal:
    """Keeps the dossier each start was given."""

    def __init__(self) -> None:
        self.started: list = []

    async def start_workflow(self, run, dossier, **kwargs) -> None:
        self.started.append(dossier)


async def test_new_dossiers_take_their_cadences_from_the_environment(
    settings, session_factory, monkeypatch
):
    """DOSSIER_FOLLOW_UP_* set the policy a new dossier starts with."""
    monkeypatch.setenv("DOSSIER_FOLLOW_UP_PAYMENT_ORDER_REMINDER_EVERY_DAYS", "3")
    monkeypatch.setenv("DOSSIER_FOLLOW_UP_REMINDERS_BEFORE_CALL", "4")
    temporal = RecordingTemporal()
    intake = IntakeService(
        settings,
        temporal,
        session_factory,
        LocalArchive(settings.archive_dir),
        search_attributes=False,
    )

    await submit(intake, "excel.xml", (FIXTURES / "training-open-1p.xml").read_bytes())

    policy = temporal.started[0].policy
    assert policy.payment_order_reminder_every_days == 3
    assert policy.reminders_before_call == 4
    assert policy.reminder_every_days == 7
