"""The local archive: write-once, idempotent, hash-checked, inside its folder."""

from __future__ import annotations

import json
import os
import stat
from datetime import date
from pathlib import Path

import pytest

from adapters.archive import (
    ArchiveConflict,
    ArchiveCorrupted,
    ArchiveNotFound,
    InvalidArchiveKey,
    LocalArchive,
    name_from_key,
    safe_name,
)
from kmo.rules import retention_until

INVOICE = b"factuur LS-2026-0141"
INVOICE_SHA256 = "37b7ef48a4f79d11aba0ab0da3dff2282bea5d24e39e11d59bd993da5d2496f0"
INVOICE_KEY = "0412345614/0412345614-ls-2026-0141/37b7ef48a4f79d11-factuur.xml"
RETAIN = date(2036, 12, 8)


@pytest.fixture
def archive(tmp_path: Path) -> LocalArchive:
    return LocalArchive(tmp_path / "archive")


def put_invoice(
    archive: LocalArchive, data: bytes = INVOICE, name: str = "factuur.xml"
):
    return archive.put(
        "0412345614",
        "0412345614-ls-2026-0141",
        name,
        data,
        retain_until=RETAIN,
        content_type="application/xml",
    )


def test_put_gives_a_content_addressed_key(archive: LocalArchive) -> None:
    """The key is container/dossier/<first 16 hex of the SHA-256>-<name>."""
    item = put_invoice(archive)

    assert item.key == INVOICE_KEY
    assert item.sha256 == INVOICE_SHA256
    assert item.size == 20
    assert item.retain_until == RETAIN
    assert item.content_type == "application/xml"


def test_get_returns_the_stored_bytes(archive: LocalArchive) -> None:
    """What was put comes back byte for byte."""
    put_invoice(archive)

    assert archive.get(INVOICE_KEY) == INVOICE
    assert archive.exists(INVOICE_KEY)


def test_same_bytes_twice_is_one_object(archive: LocalArchive, tmp_path: Path) -> None:
    """A retried put of the same bytes returns the same key and writes nothing new."""
    first = put_invoice(archive)
    second = put_invoice(archive)

    folder = tmp_path / "archive" / "0412345614" / "0412345614-ls-2026-0141"
    assert second == first
    assert sorted(p.name for p in folder.iterdir()) == [
        "37b7ef48a4f79d11-factuur.xml",
        "37b7ef48a4f79d11-factuur.xml.meta.json",
    ]


def test_stored_files_are_read_only_with_a_sidecar(
    archive: LocalArchive, tmp_path: Path
) -> None:
    """The object and its sidecar are 0444; the sidecar keeps hash, size, retention."""
    put_invoice(archive)

    path = tmp_path / "archive" / INVOICE_KEY
    sidecar = path.with_name(path.name + ".meta.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o444
    assert json.loads(sidecar.read_text()) == {
        "sha256": INVOICE_SHA256,
        "size": 20,
        "content_type": "application/xml",
        "retain_until": "2036-12-08",
    }


def test_a_second_put_keeps_the_first_retention(archive: LocalArchive) -> None:
    """Write-once holds for the metadata too: the first retention date stays."""
    put_invoice(archive)

    again = archive.put(
        "0412345614",
        "0412345614-ls-2026-0141",
        "factuur.xml",
        INVOICE,
        retain_until=date(2030, 1, 1),
        content_type="text/plain",
    )

    assert again.retain_until == RETAIN
    assert again.content_type == "application/xml"


def test_different_bytes_under_the_same_name_are_both_kept(
    archive: LocalArchive,
) -> None:
    """A corrected file with the same name gets its own key; the first stays."""
    first = put_invoice(archive)
    second = put_invoice(archive, data=b"factuur LS-2026-0141 (gecorrigeerd)")

    assert second.key != first.key
    assert archive.get(first.key) == INVOICE


def test_other_bytes_at_an_existing_key_are_refused(
    archive: LocalArchive, tmp_path: Path
) -> None:
    """Bytes already at the key that differ from the put's are never overwritten."""
    path = tmp_path / "archive" / INVOICE_KEY
    path.parent.mkdir(parents=True)
    path.write_bytes(b"something else")

    with pytest.raises(ArchiveConflict):
        put_invoice(archive)
    assert path.read_bytes() == b"something else"


def test_tampered_object_is_detected_on_read(
    archive: LocalArchive, tmp_path: Path
) -> None:
    """A changed byte on disk makes get raise ArchiveCorrupted."""
    put_invoice(archive)
    path = tmp_path / "archive" / INVOICE_KEY
    os.chmod(path, 0o644)
    path.write_bytes(b"factuur LS-2026-0142")

    with pytest.raises(ArchiveCorrupted):
        archive.get(INVOICE_KEY)


def test_missing_sidecar_is_corruption(archive: LocalArchive, tmp_path: Path) -> None:
    """Without its sidecar an object cannot be verified, so get refuses it."""
    put_invoice(archive)
    (tmp_path / "archive" / (INVOICE_KEY + ".meta.json")).unlink()

    with pytest.raises(ArchiveCorrupted):
        archive.get(INVOICE_KEY)


def test_unknown_key_is_not_found(archive: LocalArchive) -> None:
    """A well-formed key with nothing stored raises ArchiveNotFound."""
    key = "0412345614/0412345614-ls-2026-0141/0000000000000000-factuur.xml"

    with pytest.raises(ArchiveNotFound):
        archive.get(key)
    assert not archive.exists(key)


def test_names_cannot_leave_the_container(
    archive: LocalArchive, tmp_path: Path
) -> None:
    """Separators and dots in a name are neutralised; the file stays in its folder."""
    item = archive.put(
        "0412345614",
        "../../etc",
        "../../etc/passwd",
        b"x",
        retain_until=RETAIN,
        content_type="text/plain",
    )

    assert item.key.startswith("0412345614/etc/")
    assert item.key.endswith("-etc_passwd")
    assert (tmp_path / "archive" / item.key).is_file()


@pytest.mark.parametrize(
    "key",
    [
        "../0412345614/x/0000000000000000-a.pdf",
        "0412345614/../../0000000000000000-a.pdf",
        "/etc/passwd",
        "0412345614/d/0000000000000000-a.pdf.meta.json",
        "0412345614/d/.0000000000000000-a.pdf",
        "0412345614/d/e/0000000000000000-a.pdf",
        "0412345614/d/no-hash.pdf",
    ],
)
def test_keys_outside_the_layout_are_refused(archive: LocalArchive, key: str) -> None:
    """Traversal, absolute paths, sidecars and odd shapes are not archive keys."""
    with pytest.raises(InvalidArchiveKey):
        archive.get(key)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("eindrapport café.pdf", "eindrapport_cafe.pdf"),
        ("a\nb\x00c.pdf", "a_b_c.pdf"),
        ("..\\..\\boot.ini", "boot.ini"),
        (".hidden", "hidden"),
        ("certificaat-An Peeters.pdf", "certificaat-An_Peeters.pdf"),
    ],
)
def test_safe_name(raw: str, expected: str) -> None:
    """Accents go, control characters and separators become underscores."""
    assert safe_name(raw) == expected


def test_a_name_of_only_dots_is_refused() -> None:
    """A name that is nothing once cleaned cannot be stored."""
    with pytest.raises(InvalidArchiveKey):
        safe_name("../..")


def test_long_names_keep_their_extension() -> None:
    """Names are cut to 120 characters without losing the file type."""
    name = safe_name("x" * 300 + ".pdf")

    assert len(name) == 120
    assert name.endswith("xxx.pdf")


def test_name_from_key() -> None:
    """The stored name is the key's last part after the hash prefix."""
    assert name_from_key(INVOICE_KEY) == "factuur.xml"


def test_retention_is_ten_years_after_the_start() -> None:
    """Documents of a dossier starting 8 Dec 2026 are kept until 8 Dec 2036."""
    assert retention_until(date(2026, 12, 8)) == date(2036, 12, 8)


def test_retention_from_29_february() -> None:
    """A start on 29 February 2028 is kept until 28 February 2038."""
    assert retention_until(date(2028, 2, 29)) == date(2038, 2, 28)
