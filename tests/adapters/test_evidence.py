"""Evidence: a dossier's manifest, its export as a zip, and a container's listing.

Each test runs on SQLite and, marked `postgres`, on a fresh PostgreSQL
database, with a local archive in the test's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from adapters.archive import LocalArchive
from adapters.evidence import (
    EvidenceError,
    build_manifest,
    container_listing,
    export_dossier,
    listing_csv,
)
from adapters.records import (
    make_engine,
    make_session_factory,
    record_archived,
    save_dossier,
    upgrade_database,
)
from adapters.settings import get_settings
from starter.cli import app
from tests.factories import training_dossier

PROVIDER = "0412345614"
DOSSIER = "0412345614-ls-2026-0141"
OTHER_DOSSIER = "0412345614-ls-2026-0150"
RETAIN = date(2036, 12, 8)

INVOICE = b"factuur LS-2026-0141"
MAIL = (
    b"From: staff@kmo-dossier.example\r\nSubject: aanvraag\r\n\r\n"
    b"aanvraag ingediend\r\n"
)
CERTIFICATE = b"%PDF-1.7 certificaat An Peeters"
OTHER_INVOICE = b"factuur LS-2026-0150"
FOREIGN_INVOICE = b"factuur OT-2026-0001"

INVOICE_KEY = f"{PROVIDER}/{DOSSIER}/37b7ef48a4f79d11-factuur.xml"
MAIL_KEY = f"{PROVIDER}/{DOSSIER}/84ecbe253a321726-application-0.eml"
CERTIFICATE_KEY = f"{PROVIDER}/{DOSSIER}/d082a54f7cc3e382-certificaat-An_Peeters.pdf"
OTHER_KEY = f"{PROVIDER}/{OTHER_DOSSIER}/f0146b18b0b6c91e-factuur.xml"

MANIFEST_ITEMS = [
    {
        "key": INVOICE_KEY,
        "file": f"items/{INVOICE_KEY}",
        "name": "factuur.xml",
        "sha256": "37b7ef48a4f79d11aba0ab0da3dff2282bea5d24e39e11d59bd993da5d2496f0",
        "size": 20,
        "content_type": "application/xml",
        "retain_until": "2036-12-08",
        "created_at": "2026-11-20T10:00:00+00:00",
    },
    {
        "key": MAIL_KEY,
        "file": f"items/{MAIL_KEY}",
        "name": "application-0.eml",
        "sha256": "84ecbe253a32172648d02608d78061359a7c5b7931be4a5d66ed55a714562f32",
        "size": 74,
        "content_type": "message/rfc822",
        "retain_until": "2036-12-08",
        "created_at": "2026-12-01T09:00:00+00:00",
    },
    {
        "key": CERTIFICATE_KEY,
        "file": f"items/{CERTIFICATE_KEY}",
        "name": "certificaat-An Peeters.pdf",
        "sha256": "d082a54f7cc3e3828f6122e7f8f5b956cd19e0b2429a6d180a4d6f6b7e4ccaae",
        "size": 31,
        "content_type": "application/pdf",
        "retain_until": "2036-12-08",
        "created_at": "2026-12-09T16:00:00+00:00",
    },
]


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database of each kind."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def archive(tmp_path: Path) -> LocalArchive:
    return LocalArchive(tmp_path / "archive")


def archive_item(
    session: Session,
    archive: LocalArchive,
    dossier_id: str,
    name: str,
    data: bytes,
    content_type: str,
    created_at: datetime,
    container: str = PROVIDER,
) -> str:
    """Archive and record one item as the activities do, at a chosen time."""
    item = archive.put(
        container,
        dossier_id,
        name,
        data,
        retain_until=RETAIN,
        content_type=content_type,
    )
    row = record_archived(
        session,
        item,
        container=container,
        dossier_id=dossier_id,
        name=name,
        content_type=content_type,
    )
    row.created_at = created_at
    return item.key


@pytest.fixture
def dossier(sessions: sessionmaker[Session], archive: LocalArchive) -> str:
    """Training LS-2026-0141 with its invoice, application mail and certificate;
    beside it another dossier of the same provider and one of another provider."""
    with sessions.begin() as session:
        save_dossier(session, training_dossier(), "dossier-0412345614-ls-2026-0141")
        archive_item(
            session, archive, DOSSIER, "factuur.xml", INVOICE, "application/xml",
            datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        )  # fmt: skip
        archive_item(
            session, archive, DOSSIER, "application-0.eml", MAIL, "message/rfc822",
            datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        )  # fmt: skip
        archive_item(
            session, archive, DOSSIER, "certificaat-An Peeters.pdf", CERTIFICATE,
            "application/pdf", datetime(2026, 12, 9, 16, 0, tzinfo=UTC),
        )  # fmt: skip
        archive_item(
            session, archive, OTHER_DOSSIER, "factuur.xml", OTHER_INVOICE,
            "application/xml", datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),
        )  # fmt: skip
        archive_item(
            session, archive, "0999999999-ot-2026-0001", "factuur.xml",
            FOREIGN_INVOICE, "application/xml",
            datetime(2026, 12, 2, 8, 0, tzinfo=UTC), container="0999999999",
        )  # fmt: skip
    return DOSSIER


# --- manifest --------------------------------------------------------------


def test_manifest_lists_every_archived_item_of_the_dossier(
    sessions, archive, dossier
) -> None:
    """The manifest names the dossier, its provider and its three items in order."""
    with sessions() as session:
        manifest = build_manifest(session, archive, dossier)

    assert {field: value for field, value in manifest.items() if field != "sha256"} == {
        "format": "kmo-dossier-evidence/1",
        "dossier_id": "0412345614-ls-2026-0141",
        "provider_id": "0412345614",
        "containers": ["0412345614"],
        "items": MANIFEST_ITEMS,
    }


def test_manifest_sha256_is_taken_over_its_canonical_json(
    sessions, archive, dossier
) -> None:
    """The manifest's sha256 is the SHA-256 of its sorted, compact JSON without it."""
    with sessions() as session:
        manifest = build_manifest(session, archive, dossier)

    body = {field: value for field, value in manifest.items() if field != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    assert manifest["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert manifest["sha256"] == (
        "c4c16b570f15df89d718b777b11cdef233afe6ca6a388c6f5caa0937bc1aa314"
    )


def test_manifest_refuses_a_dossier_without_archived_items(
    sessions, archive, dossier
) -> None:
    """A dossier id the records hold nothing for is refused with a hint."""
    with sessions() as session, pytest.raises(EvidenceError) as refused:
        build_manifest(session, archive, "0412345614-ls-2026-9999")

    assert str(refused.value) == (
        "dossier 0412345614-ls-2026-9999 has no archived documents or mails in "
        "the records; check the dossier id"
    )


def test_manifest_refuses_a_recorded_item_missing_from_the_archive(
    sessions, tmp_path, dossier
) -> None:
    """An item in the records that the archive does not hold stops the manifest."""
    empty_archive = LocalArchive(tmp_path / "elsewhere")

    with sessions() as session, pytest.raises(EvidenceError) as refused:
        build_manifest(session, empty_archive, dossier)

    assert str(refused.value) == (
        f"dossier {DOSSIER}: {INVOICE_KEY} is in the records but the archive "
        f"answers: no archive object under {INVOICE_KEY}"
    )


# --- export ----------------------------------------------------------------


def test_export_writes_the_manifest_and_every_item(
    sessions, archive, dossier, tmp_path
) -> None:
    """The zip holds manifest.json and each item, whose bytes match their hash."""
    out = tmp_path / "export" / "dossier.zip"

    with sessions() as session:
        manifest = export_dossier(session, archive, dossier, out)

    with zipfile.ZipFile(out) as bundle:
        assert bundle.namelist() == [
            "manifest.json",
            f"items/{INVOICE_KEY}",
            f"items/{MAIL_KEY}",
            f"items/{CERTIFICATE_KEY}",
        ]
        assert json.loads(bundle.read("manifest.json")) == manifest
        assert bundle.read(f"items/{INVOICE_KEY}") == INVOICE
        assert bundle.read(f"items/{MAIL_KEY}") == MAIL
        assert bundle.read(f"items/{CERTIFICATE_KEY}") == CERTIFICATE
        for entry in manifest["items"]:
            data = bundle.read(entry["file"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert sorted(path.name for path in out.parent.iterdir()) == ["dossier.zip"]


def test_export_of_the_same_dossier_gives_the_same_zip(
    sessions, archive, dossier, tmp_path
) -> None:
    """Nothing time-dependent goes into the export: two runs are byte-identical."""
    with sessions() as session:
        export_dossier(session, archive, dossier, tmp_path / "first.zip")
        export_dossier(session, archive, dossier, tmp_path / "second.zip")

    first = (tmp_path / "first.zip").read_bytes()
    assert first == (tmp_path / "second.zip").read_bytes()


def test_export_refuses_a_tampered_file_and_leaves_no_zip(
    sessions, archive, dossier, tmp_path
) -> None:
    """A stored file whose bytes changed on disk aborts the export with its key."""
    path = archive.root / MAIL_KEY
    os.chmod(path, 0o644)
    path.write_bytes(MAIL.replace(b"ingediend", b"geweigerd"))
    out = tmp_path / "export" / "dossier.zip"

    with sessions() as session, pytest.raises(EvidenceError) as refused:
        export_dossier(session, archive, dossier, out)

    assert str(refused.value) == (
        f"dossier {DOSSIER}: {MAIL_KEY} failed its check on read (archive object "
        f"{MAIL_KEY} does not match its recorded SHA-256); nothing was exported"
    )
    assert list(out.parent.iterdir()) == []


# --- listing ---------------------------------------------------------------


def test_listing_keeps_the_items_created_in_the_period(sessions, dossier) -> None:
    """Only the provider's items created from the first to the last day count."""
    with sessions() as session:
        rows = container_listing(
            session, PROVIDER, date(2026, 12, 1), date(2026, 12, 9)
        )

    assert rows == [
        {
            "created_at": "2026-12-01T09:00:00+00:00",
            "dossier_id": DOSSIER,
            "name": "application-0.eml",
            "content_type": "message/rfc822",
            "size": 74,
            "sha256": (
                "84ecbe253a32172648d02608d78061359a7c5b7931be4a5d66ed55a714562f32"
            ),
            "retain_until": "2036-12-08",
            "key": MAIL_KEY,
        },
        {
            "created_at": "2026-12-09T16:00:00+00:00",
            "dossier_id": DOSSIER,
            "name": "certificaat-An Peeters.pdf",
            "content_type": "application/pdf",
            "size": 31,
            "sha256": (
                "d082a54f7cc3e3828f6122e7f8f5b956cd19e0b2429a6d180a4d6f6b7e4ccaae"
            ),
            "retain_until": "2036-12-08",
            "key": CERTIFICATE_KEY,
        },
    ]


def test_listing_counts_the_first_day_from_midnight_utc(sessions, dossier) -> None:
    """An item of 30 November 23:59:59 UTC belongs to a period ending that day."""
    with sessions() as session:
        rows = container_listing(
            session, PROVIDER, date(2026, 11, 30), date(2026, 11, 30)
        )

    assert [row["key"] for row in rows] == [OTHER_KEY]


def test_listing_refuses_a_period_that_ends_before_it_starts(sessions) -> None:
    """A reversed period is an error that says to swap the dates."""
    with sessions() as session, pytest.raises(EvidenceError) as refused:
        container_listing(session, PROVIDER, date(2026, 12, 9), date(2026, 12, 1))

    assert str(refused.value) == (
        "the period ends (2026-12-01) before it starts (2026-12-09); swap the dates"
    )


def test_listing_csv_has_a_header_and_one_line_per_item(sessions, dossier) -> None:
    """The CSV starts with the field names, then one line per item."""
    with sessions() as session:
        rows = container_listing(
            session, PROVIDER, date(2026, 11, 30), date(2026, 11, 30)
        )

    assert listing_csv(rows) == (
        "created_at,dossier_id,name,content_type,size,sha256,retain_until,key\n"
        "2026-11-30T23:59:59+00:00,0412345614-ls-2026-0150,factuur.xml,"
        "application/xml,20,"
        "f0146b18b0b6c91e11bf2894912021f0b7df42513e392333515ee53dff264cdf,"
        "2036-12-08,0412345614/0412345614-ls-2026-0150/f0146b18b0b6c91e-factuur.xml\n"
    )


# --- commands --------------------------------------------------------------


@pytest.fixture
def cli_data(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """The dossier command's settings pointed at a data folder in the test's folder."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DOSSIER_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    archive = LocalArchive(settings.archive_dir)
    with make_session_factory(engine).begin() as session:
        archive_item(
            session, archive, DOSSIER, "factuur.xml", INVOICE, "application/xml",
            datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        )  # fmt: skip
    engine.dispose()
    yield data_dir
    get_settings.cache_clear()


def test_export_command_writes_the_zip(cli_data: Path, tmp_path: Path) -> None:
    """`dossier export` writes the zip and prints its item count and manifest hash."""
    out = tmp_path / "dossier.zip"

    result = CliRunner().invoke(app, ["export", DOSSIER, "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: 1 item, manifest sha256 ")
    with zipfile.ZipFile(out) as bundle:
        assert bundle.read(f"items/{INVOICE_KEY}") == INVOICE


def test_export_command_exits_1_for_an_unknown_dossier(
    cli_data: Path, tmp_path: Path
) -> None:
    """`dossier export` of a dossier with nothing archived says so and exits 1."""
    result = CliRunner().invoke(
        app, ["export", "0412345614-ls-2026-9999", "--out", str(tmp_path / "x.zip")]
    )

    assert result.exit_code == 1
    assert "0412345614-ls-2026-9999 has no archived documents" in result.output


def test_listing_command_prints_csv(cli_data: Path) -> None:
    """`dossier listing --csv` prints the period's items as CSV."""
    result = CliRunner().invoke(
        app,
        ["listing", PROVIDER, "--from", "2026-11-01", "--to", "2026-11-30", "--csv"],
    )

    assert result.exit_code == 0, result.output
    assert result.output == (
        "created_at,dossier_id,name,content_type,size,sha256,retain_until,key\n"
        "2026-11-20T10:00:00+00:00,0412345614-ls-2026-0141,factuur.xml,"
        "application/xml,20,"
        "37b7ef48a4f79d11aba0ab0da3dff2282bea5d24e39e11d59bd993da5d2496f0,"
        "2036-12-08,0412345614/0412345614-ls-2026-0141/37b7ef48a4f79d11-factuur.xml\n"
    )
