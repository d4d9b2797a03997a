"""Evidence of a dossier for an audit: its manifest, one zip, a container's listing.

The manifest lists every archived document and mail of a dossier as the
records know them, each checked against the archive's own facts. Its `sha256`
is taken over the manifest's canonical JSON (keys sorted, no spaces, UTF-8)
without the `sha256` field itself, so anyone can recompute it. It carries no
export time: the same dossier gives the same manifest and the same zip.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.archive import Archive, ArchiveError, sha256_hex
from adapters.records import ArchiveItem, Dossier

MANIFEST_FORMAT = "kmo-dossier-evidence/1"
MANIFEST_NAME = "manifest.json"
ITEMS_FOLDER = "items"
LISTING_FIELDS = (
    "created_at",
    "dossier_id",
    "name",
    "content_type",
    "size",
    "sha256",
    "retain_until",
    "key",
)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


class EvidenceError(Exception):
    """The evidence cannot be given as the records describe it."""


def build_manifest(session: Session, archive: Archive, dossier_id: str) -> dict:
    """The manifest of a dossier's archived items, checked against the archive.

    Raises EvidenceError when the records hold nothing for the dossier, or
    when the archive lacks an item or states another hash or size for it.
    """
    rows = _archive_items(session, dossier_id)
    if not rows:
        raise EvidenceError(
            f"dossier {dossier_id} has no archived documents or mails in the "
            "records; check the dossier id"
        )
    for row in rows:
        _check_against_archive(archive, row)

    dossier = session.get(Dossier, dossier_id)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "dossier_id": dossier_id,
        "provider_id": dossier.provider_id if dossier else None,
        "containers": sorted({row.container for row in rows}),
        "items": [_manifest_entry(row) for row in rows],
    }
    manifest["sha256"] = manifest_sha256(manifest)
    return manifest


def manifest_sha256(manifest: dict) -> str:
    """The SHA-256 of the manifest's canonical JSON, its own `sha256` left out."""
    body = {field: value for field, value in manifest.items() if field != "sha256"}
    return sha256_hex(canonical_json(body))


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def export_dossier(
    session: Session, archive: Archive, dossier_id: str, out: Path
) -> dict:
    """Write `manifest.json` and every archived item of a dossier to the zip `out`.

    Each item is read back and its SHA-256 compared with the records; one
    mismatch aborts the export and leaves no zip behind. Returns the manifest.
    """
    manifest = build_manifest(session, archive, dossier_id)
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)

    try:
        with zipfile.ZipFile(partial, "w") as bundle:
            newest = max(entry["created_at"] for entry in manifest["items"])
            bundle.writestr(_zip_entry(MANIFEST_NAME, newest), _pretty(manifest))
            for entry in manifest["items"]:
                data = _verified_bytes(archive, dossier_id, entry)
                bundle.writestr(_zip_entry(entry["file"], entry["created_at"]), data)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def container_listing(
    session: Session, provider_id: str, since: date, until: date
) -> list[dict[str, Any]]:
    """The items archived in a provider's container from `since` to `until`.

    Both days count whole, in UTC; rows are ordered by time and hold the
    fields of LISTING_FIELDS, ready for `listing_csv`.
    """
    if until < since:
        raise EvidenceError(
            f"the period ends ({until}) before it starts ({since}); swap the dates"
        )
    start = datetime.combine(since, time(), tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC)
    rows = session.scalars(
        select(ArchiveItem)
        .where(
            ArchiveItem.container == provider_id,
            ArchiveItem.created_at >= start,
            ArchiveItem.created_at < end,
        )
        .order_by(ArchiveItem.created_at, ArchiveItem.key)
    )
    return [_listing_row(row) for row in rows]


def listing_csv(rows: list[dict[str, Any]]) -> str:
    """The listing as CSV text with a header line."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LISTING_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _archive_items(session: Session, dossier_id: str) -> list[ArchiveItem]:
    query = (
        select(ArchiveItem)
        .where(ArchiveItem.dossier_id == dossier_id)
        .order_by(ArchiveItem.created_at, ArchiveItem.key)
    )
    return list(session.scalars(query))


def _check_against_archive(archive: Archive, row: ArchiveItem) -> None:
    try:
        stored = archive.stat(row.key)
    except ArchiveError as error:
        raise EvidenceError(
            f"dossier {row.dossier_id}: {row.key} is in the records but the archive "
            f"answers: {error}"
        ) from error
    if stored.sha256 != row.sha256 or stored.size != row.size:
        raise EvidenceError(
            f"dossier {row.dossier_id}: the archive holds {row.key} with another "
            "SHA-256 or size than the records; nothing was exported"
        )


def _verified_bytes(archive: Archive, dossier_id: str, entry: dict) -> bytes:
    key = entry["key"]
    try:
        data = archive.get(key)
    except ArchiveError as error:
        raise EvidenceError(
            f"dossier {dossier_id}: {key} failed its check on read ({error}); "
            "nothing was exported"
        ) from error
    if sha256_hex(data) != entry["sha256"]:
        raise EvidenceError(
            f"dossier {dossier_id}: {key} does not match the SHA-256 in the "
            "records; nothing was exported"
        )
    return data


def _manifest_entry(row: ArchiveItem) -> dict[str, Any]:
    return {
        "key": row.key,
        "file": f"{ITEMS_FOLDER}/{row.key}",
        "name": row.name,
        "sha256": row.sha256,
        "size": row.size,
        "content_type": row.content_type,
        "retain_until": row.retain_until.isoformat(),
        "created_at": _utc_text(row.created_at),
    }


def _listing_row(row: ArchiveItem) -> dict[str, Any]:
    return {
        "created_at": _utc_text(row.created_at),
        "dossier_id": row.dossier_id,
        "name": row.name,
        "content_type": row.content_type,
        "size": row.size,
        "sha256": row.sha256,
        "retain_until": row.retain_until.isoformat(),
        "key": row.key,
    }


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _zip_entry(name: str, created_at: str) -> zipfile.ZipInfo:
    """A read-only, deflated zip entry dated by its item in UTC (zips hold no zone)."""
    moment = datetime.fromisoformat(created_at).timetuple()[:6]
    entry = zipfile.ZipInfo(name, date_time=max(moment, ZIP_EPOCH))
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o444 << 16
    return entry


def _pretty(manifest: dict) -> bytes:
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
    return text.encode("utf-8") + b"\n"
