"""The upload's text fields, read into `UploadDetails`.

The web form and the `dossier` command take the same strings (a participant
as "Name <email>", a session as an ISO date, a PDF field as key=value), so both
read them here and reject a bad value with the same message.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from datetime import date

from kmo.addresses import InvalidAddress, mail_address
from kmo.models import Problem
from starter.intake import UploadDetails
from workflows.messages import Participant

FIELD_PREFIX = "field_"
LANGUAGES = ("nl", "fr", "en")

_PARTICIPANT = re.compile(
    r"^\s*(?P<name>[^<>]+?)\s*(?:<(?P<email>[^<>\s]+@[^<>\s]+)>)?\s*$"
)
# Line breaks, tabs, NUL, DEL, C1 codes, and the Unicode line and paragraph
# separators: none belongs in a name, a phone number or an address.
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_TRUE = {"1", "true", "yes", "on", "ja"}
_FALSE = {"0", "false", "no", "off", "nee"}


class FormError(ValueError):
    """An upload field has a value we cannot read; `problems` says which."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def parse_participant(text: str) -> Participant:
    """Read "An Peeters <an@example.be>" or just "An Peeters"."""
    check_text(text, "participants", "a participant")
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
    email = match["email"]
    if email is not None:
        email = parse_email(
            email, "participants", f"{match['name']}'s email", "invalid_participant"
        )
    return Participant(name=match["name"], email=email)


def parse_email(text: str, field: str, what: str, code: str) -> str:
    """An address mail can go to (`kmo.addresses.mail_address`), or a FormError.

    Refused here, at the upload, rather than at the dossier's first mail.
    """
    try:
        return mail_address(text)
    except InvalidAddress as error:
        shown = json.dumps(text.strip()[:120], ensure_ascii=False)
        raise FormError(
            [
                Problem(
                    code,
                    field,
                    f"{what} {shown} is not an email address we can mail to: {error}",
                )
            ]
        ) from None


def parse_participants(values: Iterable[str]) -> list[Participant]:
    """Each value is "Name <email>", or one JSON list of such strings or objects.

    Every bad entry is reported, each with its own problem.
    """
    participants: list[Participant] = []
    problems: list[Problem] = []
    for value in values:
        try:
            if value.strip().startswith(("[", "{")):  # JSON: a list, or one object
                participants += _participants_from_json(value)
            elif value.strip():
                participants.append(parse_participant(value))
        except FormError as error:
            problems += error.problems
    if problems:
        raise FormError(problems)
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
    problems: list[Problem] = []
    for item in items if isinstance(items, list) else [items]:
        try:
            if isinstance(item, dict):
                participants.append(_participant_from_object(item))
            elif isinstance(item, str):
                participants.append(parse_participant(item))
            else:
                shown = json.dumps(item)[:80]
                raise FormError(
                    [
                        Problem(
                            "invalid_participant",
                            "participants",
                            f"{shown} is not a participant; give "
                            '"Name <email>" or {"name": ..., "email": ...}',
                        )
                    ]
                )
        except FormError as error:
            problems += error.problems
    if problems:
        raise FormError(problems)
    return participants


def _participant_from_object(item: dict) -> Participant:
    """{"name": ..., "email": ...}, checked like "Name <email>"."""
    name, email = item.get("name"), item.get("email")
    shown = json.dumps(item, ensure_ascii=False)[:120]
    if not isinstance(name, str) or not name.strip() or re.search(r"[<>]", name):
        raise FormError(
            [
                Problem(
                    "invalid_participant",
                    "participants",
                    f'{shown} is not a participant; give it a "name" '
                    '(and an "email" if known)',
                )
            ]
        )
    check_text(name, "participants", "a participant's name")
    if email in (None, ""):
        return Participant(name=name.strip())
    if not isinstance(email, str):
        raise FormError(
            [
                Problem(
                    "invalid_participant",
                    "participants",
                    f"{shown}: {json.dumps(email, ensure_ascii=False)[:80]} is not "
                    "an email address; give it like an@example.be, or leave it out",
                )
            ]
        )
    check_text(email, "participants", "a participant's email")
    address = parse_email(
        email, "participants", f"{name.strip()}'s email", "invalid_participant"
    )
    return Participant(name=name.strip(), email=address)


def check_text(text: str | None, field: str, what: str) -> None:
    """Refuse a free-text value with a control character (a line break, a tab...).

    Such characters never belong in a name or a phone number, and would end
    up in the greeting of a mail or in a header.
    """
    if text is None:
        return
    for position, char in enumerate(text, start=1):
        if unicodedata.category(char) in _CONTROL_CATEGORIES:
            raise FormError(
                [
                    Problem(
                        "control_character",
                        field,
                        f"{what} contains a control character ({_char_name(char)}) "
                        f"at position {position}; write it on one line, without "
                        "line breaks or tabs",
                    )
                ]
            )


def _char_name(char: str) -> str:
    names = {"\r": "carriage return", "\n": "line break", "\t": "tab"}
    return names.get(char) or f"U+{ord(char):04X}"


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

    for value, field, what in (
        (provider, "provider", "the provider"),
        (client_email, "client_email", "the client email"),
        (client_phone, "client_phone", "the client phone"),
        (client_contact_name, "client_contact_name", "the client contact name"),
        *(
            (value, f"{FIELD_PREFIX}{key}", f"the invoice field {key}")
            for key, value in (fields or {}).items()
        ),
    ):
        attempt(check_text, value, field, what)
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
    if problems:
        raise FormError(problems)
    return details


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
