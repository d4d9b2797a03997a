"""SQL metacharacters in every text field are stored as text, on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from adapters.records import (
    Dossier,
    make_engine,
    make_session_factory,
    save_dossier,
    upgrade_database,
)
from starter.intake import UploadDetails, prepare

INVOICE = Path(__file__).resolve().parents[1] / "fixtures" / "invoices"
SQL = "'; DROP TABLE dossiers; --"
NUMBER = "LS-1'--"


def hostile_invoice() -> bytes:
    text = (INVOICE / "training-open-1p.xml").read_text()
    for original in ("Bakkerij Peeters BV", "An Peeters", "Dorpsplein 4"):
        text = text.replace(original, SQL)
    return text.replace("LS-2026-0141", NUMBER).encode()


def test_quotes_and_comment_markers_come_back_unchanged(database_url):
    """A client named like an injection and a quoted number are kept verbatim."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    dossier = prepare(hostile_invoice(), "x.xml", UploadDetails()).dossier

    with sessions() as session, session.begin():
        save_dossier(session, dossier, "dossier-sql")
    with sessions() as session:
        row = session.get(Dossier, dossier.dossier_id)
        tables = inspect(engine).get_table_names()
    engine.dispose()

    assert row.client_name == SQL
    assert row.invoice_number == NUMBER
    assert "dossiers" in tables
