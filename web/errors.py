"""The one shape of every error the API answers with."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kmo.models import Problem


def error_body(message: str, problems: Iterable[Problem] = ()) -> dict[str, Any]:
    """`{error, problems: [{code, field, message}]}`, never a stack trace."""
    return {
        "error": message,
        "problems": [
            {"code": p.code, "field": p.field, "message": p.message} for p in problems
        ],
    }
