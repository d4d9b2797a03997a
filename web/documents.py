"""A document uploaded to a dossier, by the portal's form or through the API.

Both take the same checks (a known type, a named non-empty file of at most
20 MB, a file name the archive accepts), archive the bytes in the provider's
container under the dossier, note them on the dossier's timeline once per
archived object, and tell an advice's workflow that its final report is in.
Who may upload to which dossier is decided by the caller, through `web.auth`.
"""

from __future__ import annotations

import mimetypes
import re
from datetime import date
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from temporalio.service import RPCError

from adapters.archive import InvalidArchiveKey, safe_name
from adapters.records import (
    ArchiveItem,
    Dossier,
    TimelineEvent,
    dossier_retention,
    record_archived,
    utcnow,
)
from kmo.models import Kind
from kmo.rules import retention_until
from web.errors import error_body
from web.limits import FORM_OVERHEAD_BYTES, BodySizeLimit
from workflows.dossier import DossierWorkflow
from workflows.messages import FinalReportInput

log = structlog.get_logger(__name__)

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
DOCUMENT_TYPES = {
    "quote": "quote",
    "invoice": "invoice",
    "final_report": "final report",
    "other": "other document",
}
# The API's route for documents; the invoice upload's 5 MB cap leaves it alone.
API_DOCUMENTS_PATH = re.compile(r"^/api/dossiers/[^/]+/documents/?$")


class UploadRefused(Exception):
    """An upload that cannot be archived; the message tells the user what to do.

    `code` names the check that failed, so the API can word its own answer.
    """

    def __init__(
        self, message: str, status_code: int = 422, *, code: str = "refused"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code


class DocumentBodyLimit(BodySizeLimit):
    """The body cap of the API's document upload: one document of at most 20 MB."""

    def __init__(self, app: Any) -> None:
        super().__init__(
            app, limit=MAX_DOCUMENT_BYTES + FORM_OVERHEAD_BYTES, paths=("/api/",)
        )

    def _applies(self, scope: Scope) -> bool:
        return super()._applies(scope) and bool(API_DOCUMENTS_PATH.match(scope["path"]))

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(error_body(too_large_message()), status_code=413)
        await response(scope, receive, send)


async def read_upload(document_type: str, upload: object) -> tuple[bytes, str]:
    """The bytes and safe file name of an uploaded document."""
    if document_type not in DOCUMENT_TYPES:
        raise UploadRefused("choose what kind of document this is", code="bad_type")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise UploadRefused("choose a file to upload", code="missing_file")
    data = await upload.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UploadRefused(too_large_message(), status_code=413, code="too_large")
    if not data:
        raise UploadRefused(
            f"{upload.filename} is empty; choose another file", code="empty_file"
        )
    try:
        return data, safe_name(upload.filename)
    except InvalidArchiveKey:
        raise UploadRefused(
            "the file name cannot be used; rename the file and try again",
            code="bad_file_name",
        ) from None


def archive_document(
    session_factory: Any,
    archive: Any,
    dossier: Dossier,
    document_type: str,
    name: str,
    data: bytes,
) -> ArchiveItem:
    """Archive the bytes under the dossier and note them in the records."""
    stored_name = f"{document_type}-{name}"
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    with session_factory.begin() as session:
        stored = archive.put(
            dossier.provider_id,
            dossier.dossier_id,
            stored_name,
            data,
            retain_until=_retention(session, dossier),
            content_type=content_type,
        )
        item = record_archived(
            session,
            stored,
            container=dossier.provider_id,
            dossier_id=dossier.dossier_id,
            name=stored_name,
            content_type=content_type,
        )
        _note_upload(session, dossier, item, document_type)
        return item


def is_final_report(dossier: Dossier, document_type: str) -> bool:
    """Whether the document is what an advice's workflow waits for."""
    return document_type == "final_report" and dossier.kind == Kind.ADVICE


async def signal_final_report(
    client: Any, dossier: Dossier, key: str, name: str, *, via: str
) -> bool:
    """Tell the dossier's workflow its final report is in, if Temporal is there.

    True once the signal is sent. Log events start with `via` ("portal", "api").
    """
    if client is None:
        log.warning(f"{via}.final_report_not_signalled", dossier_id=dossier.dossier_id)
        return False
    handle = client.get_workflow_handle(dossier.workflow_id)
    try:
        await handle.signal(
            DossierWorkflow.upload_final_report, FinalReportInput(key, name)
        )
    except RPCError as error:
        # The report is archived either way; staff can send the signal later.
        log.warning(
            f"{via}.final_report_signal_failed",
            dossier_id=dossier.dossier_id,
            workflow_id=dossier.workflow_id,
            status=error.status.name,
        )
        return False
    log.info(
        f"{via}.final_report_signalled",
        dossier_id=dossier.dossier_id,
        workflow_id=dossier.workflow_id,
    )
    return True


def too_large_message() -> str:
    megabytes = MAX_DOCUMENT_BYTES // (1024 * 1024)
    return f"the document is too large; the limit is {megabytes} MB"


def _retention(session: Session, dossier: Dossier) -> date:
    """The dossier's retention date: as set at close, else as its invoice's."""
    recorded = dossier_retention(session, dossier.dossier_id)
    return recorded or retention_until(dossier.created_at.date())


def _note_upload(
    session: Session, dossier: Dossier, item: ArchiveItem, document_type: str
) -> None:
    """A timeline line, once per archived object even if uploaded twice.

    The source keeps the prefix the portal has always written, so that the
    same object uploaded through the portal and the API is noted once.
    """
    source = f"portal:{item.key}"
    if session.scalar(select(TimelineEvent.id).where(TimelineEvent.source == source)):
        return
    session.add(
        TimelineEvent(
            dossier_id=dossier.dossier_id,
            at=utcnow(),
            event="document.uploaded",
            detail=f"{DOCUMENT_TYPES[document_type]}: {item.name}",
            step=dossier.step,
            source=source,
        )
    )
