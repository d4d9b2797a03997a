"""The migrations on SQLite and PostgreSQL: from nothing, from 0001 and 0002."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from adapters.records import MIGRATIONS_DIR, make_engine, upgrade_database

HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()

PROVIDER_ROW = text(
    "INSERT INTO providers (provider_id, name, dv_numbers, container_email,"
    " created_at) VALUES ('0412345614', 'Opleidingen Peeters', '[\"DV.O123456\"]',"
    " '0412345614@containers.kmo-dossier.example', '2026-12-01 09:00:00')"
)


def _version_and_tables(url: str) -> tuple[str, set[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            version = connection.scalar(text("SELECT version_num FROM alembic_version"))
        return version, set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_empty_database_upgrades_to_head(database_url: str) -> None:
    """An empty database migrates to the head and has the portal's tables."""
    upgrade_database(database_url)

    version, tables = _version_and_tables(database_url)

    assert version == HEAD
    assert {"users", "web_sessions"} <= tables


def test_database_at_0001_keeps_its_rows_when_upgraded(database_url: str) -> None:
    """A database made at 0001 with a provider upgrades to the head keeping it."""
    upgrade_database(database_url, "0001")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(PROVIDER_ROW)

        upgrade_database(database_url)

        with engine.connect() as connection:
            names = connection.scalars(text("SELECT name FROM providers")).all()
        version, tables = _version_and_tables(database_url)
    finally:
        engine.dispose()

    assert names == ["Opleidingen Peeters"]
    assert version == HEAD
    assert {"users", "web_sessions"} <= tables


def test_users_of_the_upgraded_database_refer_to_known_providers(
    database_url: str,
) -> None:
    """After the upgrade a provider user is stored for the provider made at 0001."""
    upgrade_database(database_url, "0001")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(PROVIDER_ROW)
        upgrade_database(database_url)

        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (user_id, email, password_hash, role,"
                    " provider_id, created_at, disabled) VALUES ('u1',"
                    " 'an@peeters.example', 'x', 'provider', '0412345614',"
                    " '2026-12-01 09:00:00', false)"
                )
            )
            roles = connection.scalars(
                text("SELECT role FROM users WHERE provider_id = '0412345614'")
            ).all()
    finally:
        engine.dispose()

    assert roles == ["provider"]


def test_a_dossier_recorded_at_0002_keeps_its_row_without_the_new_figures(
    database_url: str,
) -> None:
    """0003 adds the start date and expected subsidy as NULL to existing rows."""
    upgrade_database(database_url, "0002")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(PROVIDER_ROW)
            connection.execute(
                text(
                    "INSERT INTO dossiers (dossier_id, workflow_id, provider_id,"
                    " invoice_number, kind, client_name, client_enterprise_number,"
                    " step, warnings, created_at) VALUES ('D-1', 'dossier-D-1',"
                    " '0412345614', 'F-1', 'training', 'Bakkerij Peeters',"
                    " '0511223355', 'payment', '[]', '2026-12-01 09:00:00')"
                )
            )
        upgrade_database(database_url)
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT step, start_date, expected_subsidy FROM dossiers")
            ).one()
    finally:
        engine.dispose()

    assert tuple(row) == ("payment", None, None)
