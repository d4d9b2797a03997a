"""Records on SQLite and PostgreSQL: migrations, round trips, constraints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adapters.archive import ArchivedItem
from adapters.records import (
    MIGRATIONS_DIR,
    ArchiveItem,
    Base,
    Dossier,
    Provider,
    TimelineEvent,
    make_engine,
    make_session_factory,
    record_archived,
    save_dossier,
    save_dossier_if_changed,
    upgrade_database,
)
from kmo.models import Kind, Warning
from tests.factories import advice_dossier, training_dossier

TABLES = {
    "alembic_version",
    "archive_items",
    "dossiers",
    "messages",
    "providers",
    "sign_links",
    "tasks",
    "timeline_events",
    "users",
    "web_sessions",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def test_upgrade_creates_every_table(database_url: str) -> None:
    """Migrating an empty database creates all tables at the head revision."""
    upgrade_database(database_url)

    engine = make_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
        with engine.connect() as connection:
            version = connection.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    finally:
        engine.dispose()


def test_upgrade_twice_is_harmless(database_url: str) -> None:
    """Running the migrations on an up-to-date database changes nothing."""
    upgrade_database(database_url)
    upgrade_database(database_url)

    engine = make_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_migrations_match_the_models(engine: Engine) -> None:
    """Autogenerate finds no difference between the migrated schema and the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_save_dossier_round_trip(sessions: sessionmaker[Session]) -> None:
    """A saved dossier reads back with exact amounts, warnings and UTC times."""
    dossier = training_dossier(
        warnings=[Warning("late", "the application deadline is near", "rule-14d")]
    )
    with sessions.begin() as session:
        save_dossier(session, dossier, "dossier-0412345614-ls-2026-0141")

    with sessions() as session:
        row = session.get_one(Dossier, "0412345614-ls-2026-0141")
        provider = session.get_one(Provider, "0412345614")
        assert row.workflow_id == "dossier-0412345614-ls-2026-0141"
        assert row.kind == "training"
        assert row.step == "onboarding"
        assert row.client_enterprise_number == "0511.223.355"
        assert row.fee_excl_vat == Decimal("75.00")
        assert row.fee_vat == Decimal("15.75")
        assert row.fee_incl_vat == Decimal("90.75")
        assert row.warnings == [
            {
                "code": "late",
                "message": "the application deadline is near",
                "rule": "rule-14d",
            }
        ]
        assert row.created_at.tzinfo is not None
        assert row.created_at.utcoffset() == timedelta(0)
        assert provider.dv_numbers == ["DV.O214567"]
        assert provider.container_email == "0412345614@containers.kmo-dossier.example"


def test_save_dossier_keeps_progress(sessions: sessionmaker[Session]) -> None:
    """Saving a known dossier again refreshes its details but not its step."""
    with sessions.begin() as session:
        row = save_dossier(session, training_dossier(), "wf-1")
        row.step = "payment"

    with sessions.begin() as session:
        save_dossier(session, training_dossier(), "wf-1")

    with sessions() as session:
        assert session.get_one(Dossier, "0412345614-ls-2026-0141").step == "payment"


def test_save_dossier_reads_a_single_dv_number_string(
    sessions: sessionmaker[Session],
) -> None:
    """A provider row holding one DV number as a plain string becomes a list."""
    with sessions.begin() as session:
        session.add(
            Provider(
                provider_id="0412345614",
                name="Leerhuis Schelde BV",
                dv_numbers="DV.O214567",  # type: ignore[arg-type]
                container_email="0412345614@containers.kmo-dossier.example",
            )
        )

    with sessions.begin() as session:
        save_dossier(session, training_dossier(), "wf-1")

    with sessions() as session:
        provider = session.get_one(Provider, "0412345614")
        assert provider.dv_numbers == ["DV.O214567"]


PROVIDER = training_dossier().provider
CLIENT = training_dossier().client
FEE = training_dossier().fee


def test_save_dossier_if_changed_creates_missing_rows(
    sessions: sessionmaker[Session],
) -> None:
    """Before intake's rows exist, the provider and the dossier are created."""
    with sessions.begin() as session:
        written = save_dossier_if_changed(session, training_dossier(), "wf-1")

    assert written is True
    with sessions() as session:
        row = session.get_one(Dossier, "0412345614-ls-2026-0141")
        provider = session.get_one(Provider, "0412345614")
        assert (row.workflow_id, row.step, row.client_name) == (
            "wf-1",
            "onboarding",
            "Bakkerij Peeters BV",
        )
        assert row.fee_incl_vat == Decimal("90.75")
        assert provider.name == "Leerhuis Schelde BV"
        assert provider.dv_numbers == ["DV.O214567"]


def test_save_dossier_if_changed_adds_a_dossier_to_a_known_provider(
    sessions: sessionmaker[Session],
) -> None:
    """A provider's second dossier is created although the provider row is current."""
    with sessions.begin() as session:
        save_dossier(session, training_dossier(), "wf-1")
    second = training_dossier(
        dossier_id="0412345614-ls-2026-0142", invoice_number="LS-2026-0142"
    )

    with sessions.begin() as session:
        written = save_dossier_if_changed(session, second, "wf-2")

    assert written is True
    with sessions() as session:
        row = session.get_one(Dossier, "0412345614-ls-2026-0142")
        assert (row.workflow_id, row.invoice_number) == ("wf-2", "LS-2026-0142")


def test_save_dossier_if_changed_leaves_current_rows_alone(
    sessions: sessionmaker[Session],
) -> None:
    """Rows that hold the input already are not written; progress stays."""
    dossier = training_dossier(
        warnings=[Warning("late", "the application deadline is near", "rule-14d")]
    )
    with sessions.begin() as session:
        save_dossier(session, dossier, "wf-1").step = "payment"

    with sessions.begin() as session:
        written = save_dossier_if_changed(session, dossier, "wf-1")

    assert written is False
    with sessions() as session:
        row = session.get_one(Dossier, "0412345614-ls-2026-0141")
        assert (row.step, row.client_name) == ("payment", "Bakkerij Peeters BV")


@pytest.mark.parametrize(
    ("changes", "model", "column", "expected"),
    [
        (
            {"provider": replace(PROVIDER, name="Leerhuis Schelde NV")},
            Provider,
            "name",
            "Leerhuis Schelde NV",
        ),
        (
            {"provider": replace(PROVIDER, container_email="ls@containers.example")},
            Provider,
            "container_email",
            "ls@containers.example",
        ),
        (
            {"provider": replace(PROVIDER, dv_number="DV.O299999")},
            Provider,
            "dv_numbers",
            ["DV.O214567", "DV.O299999"],
        ),
        ({"kind": Kind.ADVICE}, Dossier, "kind", "advice"),
        (
            {"client": replace(CLIENT, name="Bakkerij Peeters & Zonen BV")},
            Dossier,
            "client_name",
            "Bakkerij Peeters & Zonen BV",
        ),
        (
            {"client": replace(CLIENT, enterprise_number="0511.223.454")},
            Dossier,
            "client_enterprise_number",
            "0511.223.454",
        ),
        (
            {"fee": replace(FEE, total_excl_vat=Decimal("100.00"))},
            Dossier,
            "fee_excl_vat",
            Decimal("100.00"),
        ),
        (
            {"fee": replace(FEE, vat=Decimal("21.00"))},
            Dossier,
            "fee_vat",
            Decimal("21.00"),
        ),
        (
            {"fee": replace(FEE, total_incl_vat=Decimal("121.00"))},
            Dossier,
            "fee_incl_vat",
            Decimal("121.00"),
        ),
        (
            {"warnings": [Warning("late", "the deadline is near", "rule-14d")]},
            Dossier,
            "warnings",
            [{"code": "late", "message": "the deadline is near", "rule": "rule-14d"}],
        ),
        (  # 30 % of the project for a small enterprise
            {"project_amount_excl_vat": Decimal("1000.00")},
            Dossier,
            "expected_subsidy",
            Decimal("300.00"),
        ),
        ({"start_date": date(2027, 1, 11)}, Dossier, "start_date", date(2027, 1, 11)),
        (  # before the first rate of the table (1 December 2019): no subsidy
            {"start_date": date(2019, 6, 3)},
            Dossier,
            "expected_subsidy",
            None,
        ),
    ],
)
def test_save_dossier_if_changed_refreshes_what_changed(
    sessions: sessionmaker[Session],
    changes: dict[str, object],
    model: type[Provider] | type[Dossier],
    column: str,
    expected: object,
) -> None:
    """Any value of the input that save_dossier keeps, once changed, is refreshed."""
    with sessions.begin() as session:
        save_dossier(session, training_dossier(), "wf-1").step = "payment"

    with sessions.begin() as session:
        written = save_dossier_if_changed(session, training_dossier(**changes), "wf-1")

    assert written is True
    key = "0412345614" if model is Provider else "0412345614-ls-2026-0141"
    with sessions() as session:
        assert getattr(session.get_one(model, key), column) == expected
        assert session.get_one(Dossier, "0412345614-ls-2026-0141").step == "payment"


def test_save_dossier_if_changed_rewrites_a_single_dv_number_string(
    sessions: sessionmaker[Session],
) -> None:
    """A provider row holding its DV number as a plain string is made a list."""
    with sessions.begin() as session:
        save_dossier(session, training_dossier(), "wf-1")
    with sessions.begin() as session:
        provider = session.get_one(Provider, "0412345614")
        provider.dv_numbers = "DV.O214567"  # type: ignore[assignment]

    with sessions.begin() as session:
        written = save_dossier_if_changed(session, training_dossier(), "wf-1")

    assert written is True
    with sessions() as session:
        assert session.get_one(Provider, "0412345614").dv_numbers == ["DV.O214567"]


def test_one_dossier_per_provider_and_invoice_number(
    sessions: sessionmaker[Session],
) -> None:
    """A second dossier with the provider's invoice number is refused."""
    with sessions.begin() as session:
        save_dossier(session, training_dossier(), "wf-1")

    with pytest.raises(IntegrityError), sessions.begin() as session:
        save_dossier(session, training_dossier(dossier_id="other-id"), "wf-2")


def test_dossier_needs_a_known_provider(sessions: sessionmaker[Session]) -> None:
    """The foreign key refuses a dossier of a provider that is not recorded."""
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(
            Dossier(
                dossier_id="d-1",
                workflow_id="wf-1",
                provider_id="0999999999",
                invoice_number="X-1",
                kind="advice",
                client_name="Drukkerij De Smet BV",
                client_enterprise_number="0433.221.103",
                step="onboarding",
                warnings=[],
            )
        )


def test_datetimes_come_back_as_the_same_instant_in_utc(
    sessions: sessionmaker[Session],
) -> None:
    """09:30 in Brussels (UTC+1 in winter) is stored and read back as 08:30 UTC."""
    brussels_winter = timezone(timedelta(hours=1))
    with sessions.begin() as session:
        session.add(
            TimelineEvent(
                dossier_id="d-1",
                at=datetime(2026, 12, 8, 9, 30, tzinfo=brussels_winter),
                event="step.entered",
                detail="application",
            )
        )

    with sessions() as session:
        event = session.scalars(select(TimelineEvent)).one()
        assert event.at == datetime(2026, 12, 8, 8, 30, tzinfo=UTC)
        assert event.at.tzinfo is not None
        assert event.at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    """A datetime without timezone cannot be stored: its instant is unknown."""
    with pytest.raises(Exception, match="naive datetime"), sessions.begin() as session:
        session.add(
            TimelineEvent(
                dossier_id="d-1",
                at=datetime(2026, 12, 8, 9, 30),
                event="step.entered",
                detail="",
            )
        )


def test_record_archived_twice_is_one_row(sessions: sessionmaker[Session]) -> None:
    """Recording the same archive object again leaves one row."""
    item = ArchivedItem(
        key="0712345036/0712345036-cva-26-031-e38a00/37b7ef48a4f79d11-rapport.pdf",
        sha256="37b7ef48a4f79d11aba0ab0da3dff2282bea5d24e39e11d59bd993da5d2496f0",
        size=20,
        retain_until=date(2036, 6, 1),
    )
    for _ in range(2):
        with sessions.begin() as session:
            record_archived(
                session,
                item,
                container="0712345036",
                dossier_id=advice_dossier().dossier_id,
                name="rapport.pdf",
                content_type="application/pdf",
            )

    with sessions() as session:
        rows = session.scalars(select(ArchiveItem)).all()
        assert [(r.name, r.size, r.retain_until) for r in rows] == [
            ("rapport.pdf", 20, date(2036, 6, 1))
        ]


def test_sqlite_engine_creates_its_folder(tmp_path) -> None:
    """A SQLite URL in a folder that does not exist yet still works."""
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'dossier.db'}")
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert (tmp_path / "a" / "b").is_dir()
    finally:
        engine.dispose()
