"""Checks of what the archive left on S3 itself, read past `S3Archive` with boto3.

The moto server and the `s3_archive` fixture are in tests/conftest.py.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from adapters.records import ArchiveItem
from adapters.s3archive import S3Archive


def assert_locked_and_checksummed(
    archive: S3Archive, key: str, checksum: str, locked_until: datetime
) -> None:
    """The object is in COMPLIANCE mode until `locked_until`, with S3's SHA-256."""
    client, bucket = archive._client, archive.bucket
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    attributes = client.get_object_attributes(
        Bucket=bucket, Key=key, ObjectAttributes=["Checksum"]
    )

    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == locked_until
    assert head["ChecksumSHA256"] == checksum
    assert attributes["Checksum"]["ChecksumSHA256"] == checksum


def s3_checksum(data: bytes) -> str:
    """S3's form of a SHA-256: the digest's bytes in base64."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def assert_every_item_on_s3(
    archive: S3Archive, session_factory, retain_until: dict[str, date]
) -> list[ArchiveItem]:
    """Every recorded archive item is on S3, locked, checksummed and as recorded.

    `retain_until` gives each dossier's last retention day; the lock must end
    at 00:00 UTC the day after. The bucket holds no object the records miss.
    Returns the records, for the caller's own checks.
    """
    with session_factory() as session:
        items = list(session.scalars(select(ArchiveItem).order_by(ArchiveItem.key)))
    client, bucket = archive._client, archive.bucket
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])

    assert items, "nothing was recorded as archived"
    assert sorted(obj["Key"] for obj in listed) == [item.key for item in items]
    assert {item.dossier_id for item in items} == set(retain_until)
    for item in items:
        last_day = retain_until[item.dossier_id]
        locked_until = datetime.combine(last_day + timedelta(days=1), time(), UTC)
        stored = client.get_object(Bucket=bucket, Key=item.key, ChecksumMode="ENABLED")
        data = stored["Body"].read()
        assert hashlib.sha256(data).hexdigest() == item.sha256, item.key
        assert stored["Metadata"]["sha256"] == item.sha256, item.key
        assert (item.size, item.retain_until) == (len(data), last_day), item.key
        assert stored["ContentType"] == item.content_type, item.key
        assert_locked_and_checksummed(
            archive, item.key, s3_checksum(data), locked_until
        )
    return items
