"""Mail and document templates: Jinja2 over `templates/<lang>/`, Dutch first.

A mail template is a pair `templates/<lang>/mail/<name>.txt` and `.html`.
The `.txt` file's first line is `Subject: ...` (the layouts fill it from a
`{% block subject %}`); it becomes the subject, and a reminder
(`sequence > 0`) gets the language's reminder prefix in front of it. The HTML
gets the final subject as `subject`. When a
language lacks a mail, the Dutch one is sent, so a client always gets a mail.

Filters: `date` (long date in the language's Belgian or British locale;
takes a date, a datetime or an ISO string) and `money` (EUR).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from kmo.models import Kind
from workflows.messages import DossierInput

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_LANGUAGE = "nl"
LOCALES = {"nl": "nl_BE", "fr": "fr_BE", "en": "en_GB"}
SUBJECT_MARKER = "Subject: "
REMINDER_PREFIX = {"nl": "Herinnering: ", "fr": "Rappel : ", "en": "Reminder: "}

MAIL_TEMPLATES = (
    "onboarding",
    "application",
    "terms",
    "deposit",
    "payment_order",
    "attendance",
    "satisfaction",
    "certificate",
    "final_report_request",
    "final_report",
    "lapsed",
    "cancelled",
)


class UnknownTemplate(LookupError):
    """No template of that name exists, in any language."""


class RenderedMail(NamedTuple):
    subject: str
    text: str
    html: str


def mail_context(
    dossier: DossierInput,
    *,
    sequence: int = 0,
    sign_links: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What every mail template can use.

    Besides the inputs: `provider`, `client`, `is_training`, `links` (one
    `{signer, label, url}` per sign link, the client labelled by name) and
    `deadline` (the date in `extra["deadline"]`, or None).
    """
    extra = dict(extra or {})
    client_label = dossier.client.contact_name or dossier.client.name
    links = [
        {
            "signer": signer,
            "label": client_label if signer == "client" else signer,
            "url": url,
        }
        for signer, url in (sign_links or {}).items()
    ]
    return {
        "dossier": dossier,
        "sequence": sequence,
        "sign_links": dict(sign_links or {}),
        "extra": extra,
        "provider": dossier.provider,
        "client": dossier.client,
        "is_training": dossier.kind == Kind.TRAINING,
        "links": links,
        "deadline": _as_date(extra["deadline"]) if extra.get("deadline") else None,
    }


def render_mail(
    template: str,
    language: str,
    context: Mapping[str, Any],
    *,
    root: Path = TEMPLATES_DIR,
) -> RenderedMail:
    """Render mail `template` in `language` (or Dutch when it lacks one).

    `context` must hold `sequence`; 0 is the first mail, n the n-th reminder.
    """
    language = mail_language(template, language, root)
    environment = _environment(root, language)
    values = {"language": language, "reminder": context["sequence"] > 0, **context}

    first_line, _, text = (
        environment.get_template(f"mail/{template}.txt").render(values).partition("\n")
    )
    if not first_line.startswith(SUBJECT_MARKER):
        raise UnknownTemplate(
            f"mail/{template}.txt must start with a '{SUBJECT_MARKER}' line"
        )
    subject = " ".join(first_line.removeprefix(SUBJECT_MARKER).split())
    if values["reminder"]:
        subject = REMINDER_PREFIX[language] + subject
    text = text.lstrip("\n")

    values["subject"] = subject
    html = environment.get_template(f"mail/{template}.html").render(values)
    return RenderedMail(subject, text, html)


def render_document(
    name: str,
    language: str,
    context: Mapping[str, Any],
    *,
    root: Path = TEMPLATES_DIR,
) -> str:
    """Render document template `name` (e.g. "certificate.html") as HTML."""
    if not (root / _known(language) / name).is_file():
        language = DEFAULT_LANGUAGE
    if not (root / language / name).is_file():
        raise UnknownTemplate(f"there is no document template '{name}'")
    values = {"language": language, **context}
    return _environment(root, language).get_template(name).render(values)


def mail_language(template: str, language: str, root: Path = TEMPLATES_DIR) -> str:
    """The language the mail goes out in: the client's, else Dutch."""
    if "/" in template or template.startswith("."):
        raise UnknownTemplate(f"'{template}' is not a mail template name")
    for candidate in (_known(language), DEFAULT_LANGUAGE):
        folder = root / candidate / "mail"
        if (folder / f"{template}.txt").is_file() and (
            folder / f"{template}.html"
        ).is_file():
            return candidate
    raise UnknownTemplate(f"there is no mail template '{template}'")


def _known(language: str) -> str:
    language = (language or "").strip().lower()[:2]
    return language if language in LOCALES else DEFAULT_LANGUAGE


@lru_cache(maxsize=16)
def _environment(root: Path, language: str) -> Environment:
    locale = LOCALES[language]
    environment = Environment(
        loader=FileSystemLoader(root / language),
        autoescape=select_autoescape(
            enabled_extensions=("html",), default_for_string=False
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["date"] = lambda value: format_date(
        _as_date(value), format="long", locale=locale
    )
    environment.filters["money"] = lambda value: format_currency(
        Decimal(str(value)), "EUR", locale=locale
    )
    environment.globals["days_after"] = lambda day, days: (
        _as_date(day) + timedelta(days=int(days))
    )
    return environment


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
