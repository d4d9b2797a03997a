"""`/api/dossiers`: upload an invoice to start a dossier, read where dossiers stand,
add a document to a dossier.

Every route needs a caller (`web.api_auth`): staff see and upload for every
provider; a provider user uploads for its own provider only and sees only its
own dossiers, anyone else's answering 404 like an unknown id.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError, RPCStatusCode

from kmo import enterprise
from kmo.invoice import MAX_INVOICE_BYTES
from kmo.models import Fee, Problem, Warning
from starter.client import workflow_id
from starter.intake import IntakeResult, UploadDetails
from web import documents, dossiers
from web.api_auth import ApiCaller, Caller, api_caller
from web.documents import DOCUMENT_TYPES, UploadRefused
from web.errors import error_body
from web.forms import details_from_form
from web.limits import too_large_message
from workflows.messages import DossierStatus

log = structlog.get_logger()

router = APIRouter(
    prefix="/api/dossiers", tags=["dossiers"], dependencies=[Depends(api_caller)]
)

QUERY_TIMEOUT = timedelta(seconds=5)

_fee_json = TypeAdapter(Fee | None)
_warnings_json = TypeAdapter(list[Warning])
_status_json = TypeAdapter(DossierStatus)


@router.post("", status_code=201)
async def upload_invoice(request: Request, caller: ApiCaller) -> JSONResponse:
    """Start a dossier from an invoice (multipart field `invoice`).

    Answers 201 for a new dossier and 200 with the same ids when the invoice
    was uploaded before. A provider user's upload is for its own provider:
    another one in the `provider` field answers 403, none means its own.
    """
    form = await request.form()
    invoice = form.get("invoice")
    if not isinstance(invoice, UploadFile):
        return _missing_invoice()

    data = await invoice.read(MAX_INVOICE_BYTES + 1)
    if len(data) > MAX_INVOICE_BYTES:
        return JSONResponse(error_body(too_large_message()), status_code=413)
    details: UploadDetails = details_from_form(form)
    if not caller.is_staff:
        details = _for_own_provider(details, caller)

    services = request.app.state.services
    result: IntakeResult = await services.intake.submit(
        data,
        invoice.filename or "invoice",
        invoice.content_type or "application/octet-stream",
        details,
    )
    log.info(
        "dossier.uploaded",
        dossier_id=result.dossier_id,
        workflow_id=result.workflow_id,
        created=result.created,
    )
    return JSONResponse(
        _upload_answer(request, result), status_code=201 if result.created else 200
    )


def _for_own_provider(details: UploadDetails, caller: Caller) -> UploadDetails:
    """The upload's details with the provider user's own provider; 403 for another.

    A provider number that cannot be read is left for intake to refuse (422).
    """
    own = caller.provider_id
    if details.provider_id:
        try:
            given = enterprise.digits(enterprise.normalize(details.provider_id))
        except enterprise.InvalidEnterpriseNumber:
            return details
        if given != own:
            log.info("dossier.upload_for_other_provider", provider_id=own)
            raise HTTPException(403, f"you can upload invoices for provider {own} only")
    return replace(details, provider_id=own)


def _missing_invoice() -> JSONResponse:
    problem = Problem(
        "missing_invoice",
        "invoice",
        "the upload has no invoice file; send it as the form field 'invoice'",
    )
    return JSONResponse(error_body(problem.message, [problem]), status_code=422)


def _upload_answer(request: Request, result: IntakeResult) -> dict[str, Any]:
    return {
        "dossier_id": result.dossier_id,
        "workflow_id": result.workflow_id,
        "created": result.created,
        "cancelled": result.cancelled,
        "fee": _fee_json.dump_python(result.fee, mode="json"),
        "warnings": _warnings_json.dump_python(result.warnings, mode="json"),
        "links": _links(request, result.dossier_id, result.workflow_id),
    }


def _links(request: Request, dossier_id: str, workflow: str) -> dict[str, str]:
    settings = request.app.state.settings
    return {
        "status": str(request.url_for("dossier_status", dossier_id=dossier_id)),
        "temporal_ui": (
            f"{settings.temporal_ui_url}/namespaces/"
            f"{settings.temporal_namespace}/workflows/{workflow}"
        ),
    }


@router.get("")
async def list_dossiers(request: Request, caller: ApiCaller) -> dict[str, Any]:
    """The dossiers the caller may see, newest first: all of them for staff."""
    services = request.app.state.services
    rows = await run_in_threadpool(
        dossiers.list_dossiers, services.session_factory, caller.user
    )
    return {"dossiers": rows}


@router.get("/{dossier_id}", name="dossier_status")
async def dossier_status(
    request: Request, dossier_id: str, caller: ApiCaller
) -> JSONResponse:
    """The workflow's `status` query, merged with the records' row.

    Staff also get the status of a workflow the records do not know; a
    provider user only that of its own provider's recorded dossiers.
    """
    services = request.app.state.services
    row = await run_in_threadpool(
        dossiers.find_dossier, services.session_factory, caller.user, dossier_id
    )
    if row is None and not caller.is_staff:
        return _no_dossier(dossier_id)
    status, status_error = await _query_status(services.client, dossier_id)
    if row is None and status is None:
        return _no_dossier(dossier_id)

    body = {
        "dossier_id": dossier_id,
        "workflow_id": workflow_id(dossier_id),
        "record": row,
        "status": _status_json.dump_python(status, mode="json") if status else None,
        "status_error": status_error,
        "links": _links(request, dossier_id, workflow_id(dossier_id)),
    }
    return JSONResponse(body)


@router.post("/{dossier_id}/documents", status_code=201, name="dossier_documents")
async def upload_document(
    request: Request, dossier_id: str, caller: ApiCaller
) -> JSONResponse:
    """Archive a document under the dossier (multipart `document` and `type`).

    The portal's checks and archive: `type` is one of quote, invoice,
    final_report, other; the file at most 20 MB. An advice's final report
    is also signalled to its workflow. 404 for a dossier the caller cannot see.
    """
    services = request.app.state.services
    dossier = await run_in_threadpool(
        dossiers.visible_dossier, services.session_factory, caller.user, dossier_id
    )
    if dossier is None:
        return _no_dossier(dossier_id)

    form = await request.form()
    given_type = form.get("type")
    document_type = given_type if isinstance(given_type, str) else ""
    try:
        data, name = await documents.read_upload(document_type, form.get("document"))
    except UploadRefused as refused:
        return _refused_document(refused, document_type)

    item = await run_in_threadpool(
        documents.archive_document,
        services.session_factory,
        services.archive,
        dossier,
        document_type,
        name,
        data,
    )
    signalled = False
    if documents.is_final_report(dossier, document_type):
        signalled = await documents.signal_final_report(
            services.client, dossier, item.key, name, via="api"
        )
    log.info(
        "api.document_uploaded",
        dossier_id=dossier.dossier_id,
        user_id=caller.user.user_id or None,
        document_type=document_type,
        sha256=item.sha256,
    )
    return JSONResponse(
        {
            "dossier_id": dossier.dossier_id,
            "type": document_type,
            "key": item.key,
            "name": item.name,
            "sha256": item.sha256,
            "size": item.size,
            "workflow_signalled": signalled,
        },
        status_code=201,
    )


def _refused_document(refused: UploadRefused, document_type: str) -> JSONResponse:
    """The portal's refusal in the API's words and error shape."""
    types = ", ".join(DOCUMENT_TYPES)
    if refused.code == "bad_type":
        field = "type"
        message = (
            f"'{document_type}' is not a document type; send type as one of {types}"
            if document_type
            else f"the upload has no type; send type as one of {types}"
        )
    elif refused.code == "missing_file":
        field = "document"
        message = "the upload has no file; send it as the form field 'document'"
    else:
        field, message = "document", refused.message
    problem = Problem(refused.code, field, message)
    return JSONResponse(error_body(message, [problem]), status_code=refused.status_code)


def _no_dossier(dossier_id: str) -> JSONResponse:
    return JSONResponse(
        error_body(f"there is no dossier '{dossier_id}'"), status_code=404
    )


async def _query_status(
    client, dossier_id: str
) -> tuple[DossierStatus | None, str | None]:
    """Ask the workflow; (None, reason) when it cannot answer now."""
    handle = client.get_workflow_handle(workflow_id(dossier_id))
    try:
        status = await handle.query(
            "status", result_type=DossierStatus, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None, None
        log.warning(
            "dossier.status_unavailable",
            dossier_id=dossier_id,
            status=error.status.name,
        )
        return None, "the workflow did not answer; is a worker running?"
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as error:
        log.warning(
            "dossier.status_failed", dossier_id=dossier_id, error=type(error).__name__
        )
        return None, "the workflow could not give its status; see the Temporal UI"
    return status, None
