"""`/api/dossiers`: upload an invoice to start a dossier, read where dossiers stand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError, RPCStatusCode

from kmo.invoice import MAX_INVOICE_BYTES
from kmo.models import Fee, Problem, Warning
from starter.client import workflow_id
from starter.intake import IntakeResult, UploadDetails
from web import dossiers
from web.errors import error_body
from web.forms import details_from_form
from web.limits import too_large_message
from workflows.messages import DossierStatus

log = structlog.get_logger()

router = APIRouter(prefix="/api/dossiers", tags=["dossiers"])

QUERY_TIMEOUT = timedelta(seconds=5)

_fee_json = TypeAdapter(Fee | None)
_warnings_json = TypeAdapter(list[Warning])
_status_json = TypeAdapter(DossierStatus)


@router.post("", status_code=201)
async def upload_invoice(request: Request) -> JSONResponse:
    """Start a dossier from an invoice (multipart field `invoice`).

    Answers 201 for a new dossier and 200 with the same ids when the invoice
    was uploaded before.
    """
    form = await request.form()
    invoice = form.get("invoice")
    if not isinstance(invoice, UploadFile):
        return _missing_invoice()

    data = await invoice.read(MAX_INVOICE_BYTES + 1)
    if len(data) > MAX_INVOICE_BYTES:
        return JSONResponse(error_body(too_large_message()), status_code=413)
    details: UploadDetails = details_from_form(form)

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
async def list_dossiers(request: Request) -> dict[str, Any]:
    """Every dossier the records know, newest first."""
    services = request.app.state.services
    rows = await run_in_threadpool(dossiers.list_dossiers, services.session_factory)
    return {"dossiers": rows}


@router.get("/{dossier_id}", name="dossier_status")
async def dossier_status(request: Request, dossier_id: str) -> JSONResponse:
    """The workflow's `status` query, merged with the records' row."""
    services = request.app.state.services
    row = await run_in_threadpool(
        dossiers.find_dossier, services.session_factory, dossier_id
    )
    status, status_error = await _query_status(services.client, dossier_id)
    if row is None and status is None:
        return JSONResponse(
            error_body(f"there is no dossier '{dossier_id}'"), status_code=404
        )

    body = {
        "dossier_id": dossier_id,
        "workflow_id": workflow_id(dossier_id),
        "record": row,
        "status": _status_json.dump_python(status, mode="json") if status else None,
        "status_error": status_error,
        "links": _links(request, dossier_id, workflow_id(dossier_id)),
    }
    return JSONResponse(body)


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
