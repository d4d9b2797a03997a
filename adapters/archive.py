"""The archive (DMS): write-once documents and mails, one prefix per container.

A key reads `<container>/<dossier_id>/<sha256[:16]>-<name>`: the same bytes
under the same name give the same key, so a retried write is harmless, and
different bytes can never replace what is stored. Each object carries its
SHA-256, size, content type and retention date; reads verify the hash.

`LocalArchive` is the one-machine default: files made read-only (0444) with a
`<file>.meta.json` sidecar. Production uses S3 with Object Lock in COMPLIANCE
mode behind the same `Archive` interface.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

from adapters.files import write_once

META_SUFFIX = ".meta.json"
READ_ONLY = 0o444
MAX_NAME_LENGTH = 120


class ArchiveError(Exception):
    """Base class of the archive's errors."""


class ArchiveNotFound(ArchiveError):
    """No object is stored under the key."""


class ArchiveCorrupted(ArchiveError):
    """The stored bytes do not match their recorded hash."""


class ArchiveConflict(ArchiveError):
    """Different bytes were offered for a key that is already written."""


class InvalidArchiveKey(ArchiveError, ValueError):
    """A key or name that would leave its container (traversal, separators)."""


@dataclass(frozen=True)
class ArchivedItem:
    key: str
    sha256: str
    size: int
    retain_until: date
    content_type: str = "application/octet-stream"


class Archive(Protocol):
    def put(
        self,
        container: str,
        dossier_id: str,
        name: str,
        data: bytes,
        *,
        retain_until: date,
        content_type: str,
    ) -> ArchivedItem: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> ArchivedItem: ...


_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=-]+")
_KEY_PART = re.compile(r"[A-Za-z0-9_+@=-][A-Za-z0-9._+@=-]*")  # no leading dot
_HASHED_NAME = re.compile(r"[0-9a-f]{16}-.+")


def safe_name(name: str) -> str:
    """A file name that stays inside its folder: no separators, no control chars.

    Accents are dropped ("eindrapport café.pdf" -> "eindrapport_cafe.pdf"),
    other characters become "_", and leading dots go so that nothing is
    hidden or climbs up. Raises InvalidArchiveKey when nothing usable is left.
    """
    ascii_name = (
        unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    )
    cleaned = _UNSAFE.sub("_", ascii_name).lstrip("._").rstrip("_")
    if len(cleaned) > MAX_NAME_LENGTH:
        stem, dot, suffix = cleaned.rpartition(".")
        if dot and 0 < len(suffix) <= 10:
            cleaned = stem[: MAX_NAME_LENGTH - len(suffix) - 1] + "." + suffix
        else:
            cleaned = cleaned[:MAX_NAME_LENGTH]
    if not cleaned.strip("._"):
        raise InvalidArchiveKey(f"'{name}' cannot be used as a file name")
    return cleaned


def archive_key(container: str, dossier_id: str, name: str, sha256: str) -> str:
    """`<container>/<dossier_id>/<sha256[:16]>-<name>`, each part made safe."""
    prefix = f"{safe_name(container)}/{safe_name(dossier_id)}"
    stored_name = safe_name(name)
    if stored_name.endswith(META_SUFFIX):  # keep the sidecar's name for sidecars
        stored_name = stored_name[: -len(META_SUFFIX)] + "_meta.json"
    return f"{prefix}/{sha256[:16]}-{stored_name}"


def name_from_key(key: str) -> str:
    """The stored name of an object: its key's last part without the hash prefix."""
    return key.rsplit("/", 1)[-1].split("-", 1)[-1]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalArchive:
    """A write-once folder store: the one-machine stand-in for S3 Object Lock."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

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
        path = self._path(key)
        item = ArchivedItem(key, digest, len(data), retain_until, content_type)

        path.parent.mkdir(parents=True, exist_ok=True)
        written = write_once(path, data, mode=READ_ONLY)
        if not written and sha256_hex(path.read_bytes()) != digest:
            raise ArchiveConflict(
                f"archive object {key} already holds other bytes; "
                "it is never overwritten"
            )
        meta_path = path.with_name(path.name + META_SUFFIX)
        if not write_once(meta_path, _meta_bytes(item), mode=READ_ONLY):
            return self.stat(key)  # the first write's retention date holds
        return item

    def get(self, key: str) -> bytes:
        path = self._path(key)
        item = self.stat(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArchiveNotFound(f"no archive object under {key}") from None
        digest = sha256_hex(data)
        if digest != item.sha256 or not path.name.startswith(digest[:16] + "-"):
            raise ArchiveCorrupted(
                f"archive object {key} does not match its recorded SHA-256"
            )
        return data

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> ArchivedItem:
        """The recorded facts of an object, from its sidecar (no hash check)."""
        path = self._path(key)
        meta_path = path.with_name(path.name + META_SUFFIX)
        if not path.is_file():
            raise ArchiveNotFound(f"no archive object under {key}")
        try:
            meta = json.loads(meta_path.read_bytes())
            return ArchivedItem(
                key=key,
                sha256=meta["sha256"],
                size=meta["size"],
                retain_until=date.fromisoformat(meta["retain_until"]),
                content_type=meta["content_type"],
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError) as error:
            raise ArchiveCorrupted(
                f"archive object {key} has a missing or unreadable sidecar"
            ) from error

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if (
            len(parts) != 3
            or not all(_KEY_PART.fullmatch(part) for part in parts)
            or not _HASHED_NAME.fullmatch(parts[2])
            or parts[2].endswith(META_SUFFIX)
        ):
            raise InvalidArchiveKey(f"'{key}' is not an archive key")
        return self.root.joinpath(*parts)


def _meta_bytes(item: ArchivedItem) -> bytes:
    meta = {
        "sha256": item.sha256,
        "size": item.size,
        "content_type": item.content_type,
        "retain_until": item.retain_until.isoformat(),
    }
    return json.dumps(meta, indent=2, sort_keys=True).encode() + b"\n"
