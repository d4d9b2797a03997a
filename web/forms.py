"""The upload's text fields, read into `UploadDetails`.

The web form and the `dossier` command take the same strings (a participant
as "Name <email>", a session as an ISO date, a PDF field as key=value), so both
read them here and reject a bad value with the same message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date

from kmo.models import Problem
from starter.intake import UploadDetails
from workflows.messages import Participant

FIELD_PREFIX = "field_"
LANGUAGES = ("nl", "fr", "en")

_PARTICIPANT = re.compile(
    r"^\s*(?P<name>[^<>]+?)\s*(?:<(?P<email>[^<>\s]+@[^<>\s]+)>)?\s*$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TRUE = {"1", "true", "yes", "on", "ja"}
_FALSE = {"0", "false", "no", "off", "nee"}


class FormError(ValueError):
    """An upload field has a value we cannot read; `problems` says which."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def parse_participant(text: str) -> Participant:
    """Read "An Peeters <an@example.be>" or just "An Peeters"."""
    match = _PARTICIPANT.match(text)
    if not match:
        raise FormError(
            [
                Problem(
                    "invalid_participant",
                    "participants",
                    f"'{text}' is not a participant; write it as "
                    "'Name <email>' or just 'Name'",
                )
            ]
        )
    return Participant(name=match["name"], email=match["email"])


def parse_participants(values: Iterable[str]) -> list[Participant]:
    """Each value is "Name <email>", or one JSON list of such strings or objects."""
    participants: list[Participant] = []
    for value in values:
        if value.strip().startswith("["):
            participants += _participants_from_json(value)
        elif value.strip():
            participants.append(parse_participant(value))
    return participants


def _participants_from_json(text: str) -> list[Participant]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise FormError(
            [
                Problem(
                    "invalid_participant",
                    "participants",
                    f"the participants list is not valid JSON: {error.msg}",
                )
            ]
        ) from error
    participants: list[Participant] = []
    for item in items:
        if isinstance(item, dict) and item.get("name"):
            participants.append(Participant(str(item["name"]), item.get("email")))
        else:
            participants.append(parse_participant(str(item)))
    return participants


def parse_session_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as error:
        raise FormError(
            [
                Problem(
                    "invalid_session_date",
                    "session_dates",
                    f"'{text}' is not a date; write it as YYYY-MM-DD",
                )
            ]
        ) from error


def parse_bool(text: str | None, field: str) -> bool | None:
    if text is None or not text.strip():
        return None
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FormError(
        [Problem("invalid_boolean", field, f"'{text}' is not yes or no for {field}")]
    )


def parse_language(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    language = text.strip().lower()
    if language not in LANGUAGES:
        raise FormError(
            [
                Problem(
                    "invalid_language",
                    "language",
                    f"language '{text}' is not one of nl, fr, en",
                )
            ]
        )
    return language


def parse_field(text: str) -> tuple[str, str]:
    """Read a PDF invoice field given as "key=value"."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise FormError(
            [
                Problem(
                    "invalid_field",
                    "fields",
                    f"'{text}' is not a field; write it as key=value",
                )
            ]
        )
    return key.strip(), value.strip()


def build_details(
    *,
    provider: str | None = None,
    participants: Iterable[str] = (),
    client_email: str | None = None,
    client_phone: str | None = None,
    client_contact_name: str | None = None,
    language: str | None = None,
    has_platform_account: bool | None = None,
    session_dates: Iterable[str] = (),
    fields: dict[str, str] | None = None,
) -> UploadDetails:
    """Turn the upload's strings into `UploadDetails`, all problems at once."""
    problems: list[Problem] = []

    def attempt(read, *args):
        try:
            return read(*args)
        except FormError as error:
            problems.extend(error.problems)
            return None

    problems += _control_characters(
        {
            "provider": provider,
            "client_email": client_email,
            "client_phone": client_phone,
            "client_contact_name": client_contact_name,
            **{FIELD_PREFIX + key: value for key, value in (fields or {}).items()},
        }
    )
    details = UploadDetails(
        provider_id=_blank_to_none(provider),
        participants=attempt(parse_participants, participants) or [],
        client_email=_blank_to_none(client_email),
        client_phone=_blank_to_none(client_phone),
        client_contact_name=_blank_to_none(client_contact_name),
        language=attempt(parse_language, language),
        has_platform_account=has_platform_account,
        session_dates=[
            day
            for text in session_dates
            if text.strip() and (day := attempt(parse_session_date, text))
        ],
        fields=dict(fields or {}),
    )
    named = " ".join(f"{p.name} {p.email or ''}" for p in details.participants)
    problems += _control_characters({"participants": named})
    if problems:
        raise FormError(problems)
    return details


def _control_characters(values: dict[str, str | None]) -> list[Problem]:
    """A problem per field holding a control character (NUL, CR, LF, ...).

    No name, phone or address has one; in a mail header CR and LF would start
    a header of their own, and PostgreSQL stores no NUL in text.
    """
    return [
        Problem(
            "control_character",
            field,
            f"{field} contains a control character (such as NUL or a line "
            "break); remove it",
        )
        for field, value in values.items()
        if isinstance(value, str) and _CONTROL.search(value)
    ]


def details_from_form(form) -> UploadDetails:
    """Read a multipart form (Starlette `FormData`) into `UploadDetails`."""
    text = {key: value for key, value in form.multi_items() if isinstance(value, str)}
    fields = {
        key.removeprefix(FIELD_PREFIX): value
        for key, value in text.items()
        if key.startswith(FIELD_PREFIX) and value.strip()
    }
    return build_details(
        provider=text.get("provider"),
        participants=_strings(form.getlist("participants")),
        client_email=text.get("client_email"),
        client_phone=text.get("client_phone"),
        client_contact_name=text.get("client_contact_name"),
        language=text.get("language"),
        has_platform_account=parse_bool(
            text.get("has_platform_account"), "has_platform_account"
        ),
        session_dates=_strings(form.getlist("session_dates")),
        fields=fields,
    )


def _strings(values: Iterable[object]) -> list[str]:
    return [value for value in values if isinstance(value, str)]


def _blank_to_none(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return value.strip()
