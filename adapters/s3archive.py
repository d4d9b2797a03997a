"""The archive on S3 with Object Lock: AWS S3, MinIO or Ceph behind one `Archive`.

Every object is written once in COMPLIANCE mode, locked until 00:00 UTC of the
day after its retention date, so nobody (root included) can delete or shorten
it before then. The key is the same content-addressed key as `LocalArchive`'s;
the SHA-256 travels twice: as S3's own checksum, which S3 verifies on upload,
and in the object's metadata, which reads compare with the bytes.

A write never replaces an object: it is conditional (`If-None-Match: *`), and
when the key is taken the stored object answers for it: the same bytes give
the existing item back, other bytes are an `ArchiveConflict`.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

from adapters.archive import (
    Archive,
    ArchiveConflict,
    ArchiveCorrupted,
    ArchivedItem,
    ArchiveError,
    ArchiveNotFound,
    InvalidArchiveKey,
    LocalArchive,
    archive_key,
    sha256_hex,
)

if TYPE_CHECKING:
    from adapters.settings import Settings

LOCK_MODE = "COMPLIANCE"
SHA256_META = "sha256"  # sent as the header x-amz-meta-sha256
RETAIN_META = "retain-until"
_PART = r"[A-Za-z0-9_+@=-][A-Za-z0-9._+@=-]*"
_KEY = re.compile(rf"{_PART}/{_PART}/[0-9a-f]{{16}}-[A-Za-z0-9._+@=-]+")
_MISSING = {"404", "NoSuchKey", "NotFound"}
_TAKEN = {"412", "PreconditionFailed"}


class S3Archive:
    """Write-once objects in one bucket with Object Lock, through a boto3 client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def ensure_bucket(self) -> None:
        """Create the bucket with Object Lock, or check that the existing one has it.

        Object Lock can only be switched on when a bucket is created, so an
        existing bucket without it is refused rather than silently used.
        """
        if not self._bucket_exists():
            self._create_bucket()
        try:
            answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = answer["ObjectLockConfiguration"]["ObjectLockEnabled"]
        except (ClientError, KeyError):
            enabled = None
        if enabled != "Enabled":
            raise ArchiveError(
                f"bucket {self.bucket} has no Object Lock; documents must be kept "
                "locked, so create a new bucket with Object Lock enabled"
            )

    def put(
        self,
        container: str,
        dossier_id: str,
        name: str,
        data: bytes,
        *,
        retain_until: date,
        content_type: str,
    ) -> ArchivedItem:
        digest = sha256_hex(data)
        key = archive_key(container, dossier_id, name, digest)
        item = ArchivedItem(key, digest, len(data), retain_until, content_type)

        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata={
                    SHA256_META: digest,
                    RETAIN_META: retain_until.isoformat(),
                },
                ObjectLockMode=LOCK_MODE,
                ObjectLockRetainUntilDate=lock_until(retain_until),
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(digest),
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _code(error) not in _TAKEN:
                # A concurrent write of the key (409) also lands here: retried,
                # it finds the finished object.
                raise _failure("written", key, error) from None
            return self._existing(item)
        except BotoCoreError as error:
            raise _failure("written", key, error) from None
        return item

    def get(self, key: str) -> bytes:
        _check_key(key)
        try:
            answer = self._client.get_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
            )
            data = answer["Body"].read()
        except FlexibleChecksumError:
            raise _corrupted(key) from None
        except ClientError as error:
            raise _failure("read", key, error) from None
        except BotoCoreError as error:
            raise _failure("read", key, error) from None

        digest = sha256_hex(data)
        recorded = answer.get("Metadata", {}).get(SHA256_META)
        checksum = answer.get("ChecksumSHA256")
        if (
            digest != recorded
            or not key.rsplit("/", 1)[-1].startswith(digest[:16] + "-")
            or (checksum is not None and checksum != _b64(digest))
        ):
            raise _corrupted(key)
        return data

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ArchiveNotFound:
            return False
        return True

    def stat(self, key: str) -> ArchivedItem:
        """The recorded facts of an object, from its headers (no hash check)."""
        answer = self._head(key)
        try:
            return ArchivedItem(
                key=key,
                sha256=answer["Metadata"][SHA256_META],
                size=answer["ContentLength"],
                retain_until=_retain_until(answer),
                content_type=answer["ContentType"],
            )
        except (KeyError, ValueError) as error:
            raise ArchiveCorrupted(
                f"archive object {key} lacks its SHA-256, retention date or type"
            ) from error

    def _existing(self, offered: ArchivedItem) -> ArchivedItem:
        """The object already under the key, when it holds the offered bytes."""
        stored = self.stat(offered.key)
        if stored.sha256 != offered.sha256 or stored.size != offered.size:
            raise ArchiveConflict(
                f"archive object {offered.key} already holds other bytes; "
                "it is never overwritten"
            )
        return stored  # the first write's retention date holds

    def _head(self, key: str) -> dict[str, Any]:
        _check_key(key)
        try:
            return self._client.head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
            )
        except ClientError as error:
            raise _failure("read", key, error) from None
        except BotoCoreError as error:
            raise _failure("read", key, error) from None

    def _bucket_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _code(error) in _MISSING | {"NoSuchBucket"}:
                return False
            raise ArchiveError(
                f"bucket {self.bucket} cannot be reached ({_code(error)}); "
                "check the S3 endpoint, credentials and permissions"
            ) from None
        return True

    def _create_bucket(self) -> None:
        region = self._client.meta.region_name
        options: dict[str, Any] = {}
        if region and region != "us-east-1":  # us-east-1 takes no constraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(
                Bucket=self.bucket, ObjectLockEnabledForBucket=True, **options
            )
            self._client.put_bucket_versioning(
                Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        except ClientError as error:
            raise ArchiveError(
                f"bucket {self.bucket} could not be created ({_code(error)}); "
                "create it with Object Lock enabled, or grant s3:CreateBucket"
            ) from None


def lock_until(retain_until: date) -> datetime:
    """The moment the lock ends: 00:00 UTC of the day after the retention date."""
    return datetime.combine(retain_until + timedelta(days=1), time(), tzinfo=UTC)


def make_archive(settings: Settings) -> Archive:
    """The archive the settings choose: the local folder, or S3 with Object Lock.

    On S3 the bucket is made (or checked for Object Lock) before first use.
    Without credentials in the settings boto3 finds its own (role, profile).
    """
    if settings.archive_backend == "local":
        return LocalArchive(settings.archive_dir)

    import boto3

    def secret(value: Any) -> str | None:
        return value.get_secret_value() if value is not None else None

    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=secret(settings.s3_access_key_id),
        aws_secret_access_key=secret(settings.s3_secret_access_key),
    )
    archive = S3Archive(client, settings.s3_bucket)
    archive.ensure_bucket()
    return archive


def _check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise InvalidArchiveKey(f"'{key}' is not an archive key")


def _retain_until(head: dict[str, Any]) -> date:
    """The last day kept: the lock's end (which may have been extended), or
    the date recorded in the metadata when the object carries no lock."""
    until = head.get("ObjectLockRetainUntilDate")
    if until is None:
        return date.fromisoformat(head["Metadata"][RETAIN_META])
    return (until.astimezone(UTC) - timedelta(microseconds=1)).date()


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))


def _corrupted(key: str) -> ArchiveCorrupted:
    return ArchiveCorrupted(f"archive object {key} does not match its SHA-256")


def _failure(action: str, key: str, error: Exception) -> ArchiveError:
    """An archive error naming the key and the S3 error code, nothing secret."""
    if isinstance(error, ClientError):
        code = _code(error)
        if code in _MISSING:
            return ArchiveNotFound(f"no archive object under {key}")
        return ArchiveError(f"archive object {key} could not be {action} ({code})")
    return ArchiveError(
        f"archive object {key} could not be {action}: S3 did not answer "
        f"({type(error).__name__}); retry later"
    )
