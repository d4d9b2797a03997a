"""The provider portal: log in, list dossiers, read and upload their documents.

Pages under `/portal`. Anonymous visitors are sent to the login page, or get
401 when they ask for JSON. Every POST carries the session's CSRF token (the
login form a double-submit cookie instead, as there is no session yet).
What a user may see is decided by `web.auth` alone; this module only asks.

Uploaded documents are archived in the provider's container under the
dossier; an advice's final report is also signalled to its workflow.
The routes read `request.app.state.settings` and the session factory,
archive and Temporal client of `request.app.state.services`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import Receive, Scope, Send

from adapters.archive import (
    ArchiveCorrupted,
    ArchiveNotFound,
    InvalidArchiveKey,
    safe_name,
    sha256_hex,
)
from adapters.records import ArchiveItem, Dossier, Provider, User, WebSession
from web import auth, documents, security
from web.documents import DOCUMENT_TYPES, MAX_DOCUMENT_BYTES, UploadRefused
from web.errors import error_body
from web.limits import FORM_OVERHEAD_BYTES, BodySizeLimit

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/portal", tags=["portal"])
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

SESSION_COOKIE = "portal_session"
LOGIN_CSRF_COOKIE = "portal_login_csrf"
# The site's security headers, set here too so that pages keep them whatever
# middleware is in front; answers are never cached, as they hold dossier data.
PAGE_HEADERS = {**security.HEADERS, "cache-control": "no-store"}
BAD_CSRF = "this form has expired or was not sent from the portal; reload the page"


class PortalBodyLimit(BodySizeLimit):
    """The body cap of the portal's forms: one document of at most 20 MB."""

    def __init__(self, app: Any) -> None:
        super().__init__(
            app, limit=MAX_DOCUMENT_BYTES + FORM_OVERHEAD_BYTES, paths=("/portal/",)
        )

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            error_body(documents.too_large_message()), status_code=413
        )
        await response(scope, receive, send)


@dataclass(frozen=True)
class Visitor:
    """The logged-in user of a request and its web session."""

    user: User
    web_session: WebSession


# --- logging in and out ------------------------------------------------------


def logged_in(request: Request) -> Visitor:
    """The request's visitor; else a redirect to the login page, or 401 for JSON."""
    with _sessions(request)() as session:
        found = auth.find_session(session, request.cookies.get(SESSION_COOKIE))
    if found is not None:
        return Visitor(*found)
    if _wants_json(request):
        raise HTTPException(401, "log in to the portal first")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = "/portal/login?" + urlencode({"next": target})
    raise HTTPException(303, "log in to the portal first", headers={"Location": login})


LoggedIn = Annotated[Visitor, Depends(logged_in)]


@router.get("/login", response_class=HTMLResponse, name="portal.login_form")
def login_page(request: Request, next: str = "/portal") -> Response:
    """The login form."""
    return _login_form(request, _safe_next(next))


@router.post("/login", response_class=HTMLResponse, name="portal.login")
async def login(request: Request) -> Response:
    """Check e-mail and password; on success start a session and go on."""
    form = await request.form()
    target = _safe_next(_text(form, "next") or "/portal")
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie or not auth.same_token(cookie, form.get("csrf_token")):
        raise HTTPException(403, BAD_CSRF)

    email, password = _text(form, "email"), _text(form, "password")
    started = await run_in_threadpool(
        _start_session, request, email, password, request.cookies.get(SESSION_COOKIE)
    )
    if started is None:
        log.info("portal.login_failed")
        return _login_form(request, target, email=email, error=auth.WRONG_LOGIN)

    user_id, token = started
    log.info("portal.logged_in", user_id=user_id)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(auth.SESSION_LIFETIME.total_seconds()),
        path="/",  # the staff pages take a staff account's session too
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/portal/login")
    return response


@router.post("/logout", name="portal.logout")
async def logout(request: Request, visitor: LoggedIn) -> Response:
    """End the session and go back to the login page."""
    form = await request.form()
    _check_csrf(visitor, form)

    def end() -> None:
        with _sessions(request).begin() as session:
            auth.end_session(session, request.cookies.get(SESSION_COOKIE))

    await run_in_threadpool(end)
    log.info("portal.logged_out", user_id=visitor.user.user_id)
    response = RedirectResponse("/portal/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _login_form(
    request: Request, target: str, *, email: str = "", error: str | None = None
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = _page(
        request,
        "portal/login.html",
        {"next": target, "email": email, "error": error, "csrf_token": token},
        status_code=400 if error else 200,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path="/portal/login",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    return response


def _start_session(
    request: Request, email: str, password: str, old_token: str | None
) -> tuple[str, str] | None:
    """(user id, cookie token) of a new session, or None for a wrong login."""
    with _sessions(request).begin() as session:
        user = auth.authenticate(session, email, password)
        if user is None:
            return None
        auth.end_session(session, old_token)  # never carry a session over a login
        token, _row = auth.start_session(session, user)
        return user.user_id, token


# --- pages -------------------------------------------------------------------


@router.get("", response_class=HTMLResponse, name="portal.dossiers")
def dossiers_page(request: Request, visitor: LoggedIn, provider: str = "") -> Response:
    """The dossiers the visitor may see; staff can filter by provider."""
    user = visitor.user
    with _sessions(request)() as session:
        dossiers = auth.visible_dossiers(session, user, provider or None)
        providers = (
            list(session.scalars(select(Provider).order_by(Provider.name)))
            if user.role == auth.Role.STAFF
            else []
        )
    return _page(
        request,
        "portal/dossiers.html",
        {
            "visitor": visitor,
            "dossiers": dossiers,
            "providers": providers,
            "provider": provider,
        },
    )


@router.get(
    "/dossiers/{dossier_id}", response_class=HTMLResponse, name="portal.dossier"
)
def dossier_page(request: Request, dossier_id: str, visitor: LoggedIn) -> Response:
    """One dossier: where it stands and its documents, with an upload form."""
    return _dossier_page(request, visitor, dossier_id)


@router.get("/documents/{key:path}/download", name="portal.download")
async def download(request: Request, key: str, visitor: LoggedIn) -> Response:
    """The archived document's bytes, checked against their recorded hash."""
    item, data = await run_in_threadpool(_read_document, request, visitor, key)
    filename = item.name or "document"
    return Response(
        data,
        media_type=item.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": _attachment(filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "/dossiers/{dossier_id}/upload", response_class=HTMLResponse, name="portal.upload"
)
async def upload(request: Request, dossier_id: str, visitor: LoggedIn) -> Response:
    """Archive one document under the dossier; an advice's final report also
    goes to its workflow."""
    form = await request.form()
    _check_csrf(visitor, form)
    dossier = await run_in_threadpool(_visible_dossier, request, visitor, dossier_id)

    document_type = _text(form, "document_type")
    try:
        data, name = await documents.read_upload(document_type, form.get("document"))
    except UploadRefused as refused:
        return await run_in_threadpool(
            _dossier_page, request, visitor, dossier_id, refused=refused
        )

    item = await run_in_threadpool(
        documents.archive_document,
        _sessions(request),
        _archive(request),
        dossier,
        document_type,
        name,
        data,
    )
    log.info(
        "portal.document_uploaded",
        dossier_id=dossier.dossier_id,
        user_id=visitor.user.user_id,
        document_type=document_type,
        sha256=item.sha256,
    )
    if documents.is_final_report(dossier, document_type):
        client = getattr(request.app.state.services, "client", None)
        await documents.signal_final_report(
            client, dossier, item.key, name, via="portal"
        )
    return RedirectResponse(f"/portal/dossiers/{quote(dossier_id)}", status_code=303)


def _dossier_page(
    request: Request,
    visitor: Visitor,
    dossier_id: str,
    *,
    refused: UploadRefused | None = None,
) -> Response:
    with _sessions(request)() as session:
        dossier = auth.visible_dossier(session, visitor.user, dossier_id)
        items = auth.visible_items(session, visitor.user, dossier)
    return _page(
        request,
        "portal/dossier.html",
        {
            "visitor": visitor,
            "dossier": dossier,
            "items": items,
            "document_types": DOCUMENT_TYPES,
            "error": refused.message if refused else None,
            "max_megabytes": MAX_DOCUMENT_BYTES // (1024 * 1024),
        },
        status_code=refused.status_code if refused else 200,
    )


# --- documents ---------------------------------------------------------------


def _read_document(
    request: Request, visitor: Visitor, key: str
) -> tuple[ArchiveItem, bytes]:
    with _sessions(request)() as session:
        item = auth.visible_item(session, visitor.user, key)
    try:
        data = _archive(request).get(item.key)
    except (ArchiveNotFound, InvalidArchiveKey):
        log.warning("portal.document_missing", dossier_id=item.dossier_id)
        raise HTTPException(404, "there is no such document") from None
    except ArchiveCorrupted:
        log.error("portal.document_corrupted", dossier_id=item.dossier_id)
        raise HTTPException(500, _corrupted_message()) from None
    if sha256_hex(data) != item.sha256:
        log.error("portal.document_hash_mismatch", dossier_id=item.dossier_id)
        raise HTTPException(500, _corrupted_message())
    return item, data


# --- helpers -----------------------------------------------------------------


def _visible_dossier(request: Request, visitor: Visitor, dossier_id: str) -> Dossier:
    with _sessions(request)() as session:
        return auth.visible_dossier(session, visitor.user, dossier_id)


def _check_csrf(visitor: Visitor, form: FormData) -> None:
    if not auth.same_token(visitor.web_session.csrf_token, form.get("csrf_token")):
        log.info("portal.csrf_refused", user_id=visitor.user.user_id)
        raise HTTPException(403, BAD_CSRF)


def _page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    response = templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    response.headers.update(PAGE_HEADERS)
    return response


def _sessions(request: Request) -> Any:
    return request.app.state.services.session_factory


def _archive(request: Request) -> Any:
    return request.app.state.services.archive


def _secure(request: Request) -> bool:
    return str(request.app.state.settings.base_url).startswith("https://")


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _safe_next(target: str) -> str:
    """Only a portal or staff path: a login never sends anyone to another site."""
    inside = target in ("/portal", "/staff") or target.startswith(
        ("/portal/", "/portal?", "/staff/", "/staff?")
    )
    if inside and "\\" not in target and "//" not in target:
        return target
    return "/portal"


def _text(form: FormData, field: str) -> str:
    value = form.get(field)
    return value if isinstance(value, str) else ""


def _attachment(filename: str) -> str:
    try:
        fallback = safe_name(filename)
    except InvalidArchiveKey:
        fallback = "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _corrupted_message() -> str:
    return (
        "this document's stored copy fails its integrity check and is not "
        "served; please tell the staff"
    )
