"""The web app: upload API, dossier status, staff outbox page, health checks.

`create_app()` builds everything from settings when it starts; tests pass the
Temporal client, session factory and archive they made themselves.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from temporalio.client import Client
from temporalio.service import RPCError

from adapters.records import make_engine, make_session_factory
from adapters.s3archive import make_archive
from adapters.settings import get_settings
from kmo.invoice import InvoiceRejected
from starter.client import connect
from starter.intake import IntakeError, IntakeService
from web import (
    api,
    api_auth,
    documents,
    inbound,
    outbox,
    portal,
    sendgrid_events,
    signing,
    staff,
)
from web.errors import error_body
from web.forms import FormError
from web.limits import BodySizeLimit, upload_body_limit
from web.security import RateLimit, SecurityHeaders

RATE_LIMITED = ("/sign/", "/portal/login")
log = structlog.get_logger()

READY_TIMEOUT_SECONDS = 3.0


@dataclass
class Services:
    """What the routes reach the outside world through."""

    client: Client
    session_factory: Any
    archive: Any
    intake: IntakeService


def create_app(
    settings=None,
    *,
    temporal_client: Client | None = None,
    session_factory=None,
    archive=None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await _build_services(
            settings, temporal_client, session_factory, archive
        )
        app.state.services = services
        log.info("web.started", task_queue=settings.task_queue)
        yield
        log.info("web.stopped")

    app = FastAPI(
        title="KMO-portefeuille dossiers",
        description="Upload invoices, follow dossiers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_failures = api_auth.failed_sign_ins()
    app.add_middleware(
        BodySizeLimit,
        limit=upload_body_limit(),
        paths=("/api/",),
        skip=documents.API_DOCUMENTS_PATH,
    )
    app.add_middleware(documents.DocumentBodyLimit)
    app.add_middleware(portal.PortalBodyLimit)
    app.add_middleware(RateLimit, prefixes=RATE_LIMITED, per_minute=10)
    app.add_middleware(SecurityHeaders, https=settings.base_url.startswith("https"))
    _add_error_handlers(app)
    _add_health_routes(app)
    app.include_router(api.router)
    if settings.mail_backend == "outbox":
        app.include_router(outbox.router)  # staff's view of the mails written
    app.include_router(portal.router)
    app.include_router(signing.router)
    app.include_router(staff.router)
    app.include_router(sendgrid_events.router)
    app.include_router(inbound.router)
    return app


async def _build_services(settings, client, session_factory, archive) -> Services:
    if session_factory is None:
        session_factory = make_session_factory(make_engine(settings.database_url))
    if archive is None:
        archive = make_archive(settings)
    if client is None:
        client = await connect(settings.temporal_address, settings.temporal_namespace)
    intake = IntakeService(settings, client, session_factory, archive)
    return Services(client, session_factory, archive, intake)


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """The database and Temporal both answer."""
        services: Services = request.app.state.services
        checks = {
            "database": await _database_answers(services.session_factory),
            "temporal": await _temporal_answers(services.client),
        }
        ready = all(checks.values())
        body = {
            "status": "ready" if ready else "not ready",
            "checks": {name: "ok" if ok else "down" for name, ok in checks.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)


async def _database_answers(session_factory) -> bool:
    def select_one() -> None:
        with session_factory() as session:
            session.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(
            run_in_threadpool(select_one), timeout=READY_TIMEOUT_SECONDS
        )
    except Exception as error:  # any failure means: not ready
        log.warning("readyz.database_down", error=type(error).__name__)
        return False
    return True


async def _temporal_answers(client: Client) -> bool:
    try:
        return await asyncio.wait_for(
            client.service_client.check_health(), timeout=READY_TIMEOUT_SECONDS
        )
    except Exception as error:  # any failure means: not ready
        log.warning("readyz.temporal_down", error=type(error).__name__)
        return False


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(IntakeError)
    async def intake_error(request: Request, error: IntakeError) -> JSONResponse:
        log.info("upload.rejected", status=error.status_code, codes=_codes(error))
        return JSONResponse(
            error_body(error.message, error.problems), status_code=error.status_code
        )

    @app.exception_handler(InvoiceRejected)
    async def invoice_rejected(request: Request, error: InvoiceRejected):
        log.info("upload.unreadable", error=type(error).__name__)
        return JSONResponse(error_body(str(error)), status_code=400)

    @app.exception_handler(FormError)
    async def form_error(request: Request, error: FormError) -> JSONResponse:
        return JSONResponse(
            error_body("some upload fields cannot be read", error.problems),
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if _is_browser_page(request):
            return ERROR_PAGES.TemplateResponse(
                request,
                "error.html",
                {
                    "status": error.status_code,
                    "title": HTTPStatus(error.status_code).phrase,
                    "message": str(error.detail),
                },
                status_code=error.status_code,
                headers=error.headers,
            )
        return JSONResponse(
            error_body(str(error.detail)),
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, error: RPCError) -> JSONResponse:
        log.warning("web.temporal_error", status=error.status.name)
        return JSONResponse(
            error_body("the workflow service (Temporal) did not answer; try again"),
            status_code=503,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        messages = [
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
        ]
        return JSONResponse(error_body("; ".join(messages)), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("web.unexpected_error", incident=incident, path=request.url.path)
        return JSONResponse(
            error_body(
                f"something went wrong on our side (incident {incident}); "
                "the staff can find it in the logs"
            ),
            status_code=500,
        )


# The pages people open in a browser; elsewhere errors stay JSON.
BROWSER_PAGES = ("/portal", "/staff", "/outbox")
ERROR_PAGES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _is_browser_page(request: Request) -> bool:
    """A browser asking for one of the pages: it gets an HTML error page."""
    accept = request.headers.get("accept", "")
    return (
        request.url.path.startswith(BROWSER_PAGES)
        and "text/html" in accept
        and "application/json" not in accept
    )


def _codes(error: IntakeError) -> list[str]:
    return [problem.code for problem in error.problems]
