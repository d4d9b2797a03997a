"""The satisfaction form's questions and the validation of its answers.

Every provider gets the default questions (ratings from 1 to 5 and an open
remark, in Dutch, French and English) unless `<data_dir>/satisfaction/
<provider_id>.json` holds its own list, shaped as::

    {"questions": [
        {"id": "content", "kind": "rating", "required": true,
         "label": {"nl": "...", "fr": "...", "en": "..."}},
        {"id": "remark", "kind": "text", "required": false, "label": {...}}
    ]}

A file that cannot be read as such a list is logged and the defaults are used,
so a typo of a provider never blocks a client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

RATING, TEXT = "rating", "text"
SCALE = range(1, 6)
MAX_TEXT_LENGTH = 2000
_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PROVIDER_ID = re.compile(r"^[0-9]{1,20}$")


@dataclass(frozen=True)
class Question:
    """One question; `label` per language (nl, fr, en)."""

    id: str
    kind: str
    label: Mapping[str, str]
    required: bool = True

    def text(self, language: str) -> str:
        return self.label.get(language) or self.label.get("nl") or self.id


def _rating(question_id: str, nl: str, fr: str, en: str) -> Question:
    return Question(question_id, RATING, {"nl": nl, "fr": fr, "en": en})


DEFAULT_QUESTIONS: tuple[Question, ...] = (
    _rating(
        "content",
        "Hoe tevreden bent u over de inhoud?",
        "Êtes-vous satisfait du contenu ?",
        "How satisfied are you with the content?",
    ),
    _rating(
        "trainer",
        "Hoe tevreden bent u over de lesgever of adviseur?",
        "Êtes-vous satisfait du formateur ou du conseiller ?",
        "How satisfied are you with the trainer or adviser?",
    ),
    _rating(
        "organisation",
        "Hoe tevreden bent u over de organisatie?",
        "Êtes-vous satisfait de l'organisation ?",
        "How satisfied are you with the organisation?",
    ),
    _rating(
        "usefulness",
        "Hoe nuttig is het voor uw onderneming?",
        "Quelle est l'utilité pour votre entreprise ?",
        "How useful is it for your company?",
    ),
    Question(
        "remark",
        TEXT,
        {
            "nl": "Opmerkingen (niet verplicht)",
            "fr": "Remarques (facultatif)",
            "en": "Remarks (optional)",
        },
        required=False,
    ),
)


def questions_for(data_dir: Path, provider_id: str) -> tuple[Question, ...]:
    """The provider's own questions if its file is present and valid, else ours."""
    if not _PROVIDER_ID.match(provider_id):
        return DEFAULT_QUESTIONS
    path = data_dir / "satisfaction" / f"{provider_id}.json"
    if not path.is_file():
        return DEFAULT_QUESTIONS
    try:
        return _parse(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning(
            "satisfaction.questions_invalid",
            provider_id=provider_id,
            error=type(error).__name__,
        )
        return DEFAULT_QUESTIONS


def _parse(data: Any) -> tuple[Question, ...]:
    questions = []
    for item in data["questions"]:
        question = Question(
            id=str(item["id"]),
            kind=str(item.get("kind", RATING)),
            label={str(k): str(v) for k, v in dict(item["label"]).items()},
            required=bool(item.get("required", True)),
        )
        if not _ID.match(question.id) or question.kind not in (RATING, TEXT):
            raise ValueError(f"question {question.id!r} of kind {question.kind!r}")
        questions.append(question)
    if not questions or len({q.id for q in questions}) != len(questions):
        raise ValueError("no questions, or two with the same id")
    return tuple(questions)


def read_answers(
    questions: tuple[Question, ...],
    form: Mapping[str, Any],
    texts: Mapping[str, str],
    language: str,
) -> tuple[dict[str, int | str], dict[str, str]]:
    """The answers given, and an error per question answered wrongly or not at all.

    Form fields are named `q_<id>`; errors are keyed the same way, in `texts`'
    language.
    """
    answers: dict[str, int | str] = {}
    errors: dict[str, str] = {}
    for question in questions:
        field = f"q_{question.id}"
        raw = str(form.get(field) or "").strip()
        if question.kind == RATING:
            if raw.isdigit() and int(raw) in SCALE:
                answers[question.id] = int(raw)
            elif raw or question.required:
                errors[field] = f"{question.text(language)} {texts['error_rating']}"
        elif len(raw) > MAX_TEXT_LENGTH:
            errors[field] = f"{question.text(language)} {texts['error_text_long']}"
        elif raw:
            answers[question.id] = raw
        elif question.required:
            errors[field] = f"{question.text(language)} {texts['error_text']}"
    return answers, errors
