"""The staff outbox page (development): the mails the service wrote, readable.

In development mail goes to `.eml` files instead of SendGrid; this page lists
them and shows each one's text with its links clickable, so the signing and
upload links can be followed by hand. The mails hold the clients' names and
live signing links, so the page is staff's (`web.staff.require_staff`), and
the app mounts it only while mail goes to the outbox.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from web.staff import require_staff

router = APIRouter(tags=["staff"], dependencies=[Depends(require_staff)])

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}'\""


@dataclass
class MailSummary:
    name: str  # path relative to the outbox folder
    subject: str
    to: str
    date: datetime | None


@dataclass
class MailView:
    summary: MailSummary
    sender: str
    text: str
    attachments: list[str]


def linkify(text: str) -> Markup:
    """Escape `text` and turn its http(s) URLs into links; nothing else is HTML."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        end = match.start() + len(url)
        parts.append(escape(text[position : match.start()]))
        parts.append(
            Markup('<a href="{0}" rel="noopener noreferrer">{0}</a>').format(url)
        )
        position = end
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


templates.env.filters["linkify"] = linkify


def read_mail(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        return email.message_from_binary_file(handle, policy=policy.default)


def summarize(outbox: Path, path: Path, message: EmailMessage) -> MailSummary:
    return MailSummary(
        name=path.resolve().relative_to(outbox.resolve()).as_posix(),
        subject=str(message.get("Subject", "(no subject)")).strip(),  # unfolded
        to=str(message.get("To", "")),
        date=_date(message),
    )


def _date(message: EmailMessage) -> datetime | None:
    value = message.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def list_mails(outbox: Path) -> list[MailSummary]:
    """Every `.eml` under the outbox, newest first."""
    if not outbox.is_dir():
        return []
    paths = sorted(outbox.rglob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [summarize(outbox, path, read_mail(path)) for path in paths]


def view_mail(outbox: Path, name: str) -> MailView:
    path = _inside(outbox, name)
    message = read_mail(path)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else "(this mail has no text part)"
    attachments = [
        part.get_filename() or "(unnamed)" for part in message.iter_attachments()
    ]
    return MailView(
        summary=summarize(outbox, path, message),
        sender=str(message.get("From", "")),
        text=text,
        attachments=attachments,
    )


def _inside(outbox: Path, name: str) -> Path:
    """The mail file `name`, refusing anything outside the outbox folder."""
    root = outbox.resolve()
    path = (root / name).resolve()
    if path.suffix != ".eml" or not path.is_relative_to(root) or not path.is_file():
        raise HTTPException(404, f"there is no mail '{name}' in the outbox")
    return path


@router.get("/outbox", response_class=HTMLResponse)
async def outbox_page(request: Request) -> HTMLResponse:
    """The list of mails written to the outbox."""
    outbox = Path(request.app.state.settings.outbox_dir)
    return templates.TemplateResponse(
        request, "outbox.html", {"mails": list_mails(outbox), "outbox": outbox}
    )


@router.get("/outbox/{name:path}", response_class=HTMLResponse)
async def mail_page(request: Request, name: str) -> HTMLResponse:
    """One mail: headers, its text with links clickable, attachment names."""
    outbox = Path(request.app.state.settings.outbox_dir)
    return templates.TemplateResponse(
        request, "mail.html", {"mail": view_mail(outbox, name)}
    )
