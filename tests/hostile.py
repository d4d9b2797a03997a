"""Hostile text for the tests: SQL, markup and template syntax, NUL, unicode."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

SQL_DROP = "'; DROP TABLE dossiers; --"
SQL_OR = '" OR 1=1 --'
UNICODE = "Zoë Ðặng 山田 👩\u200d💼 \u202eRTL"
NUL = "An\x00Peeters"
SCRIPT = "<script>alert('x')</script>"
TEMPLATE = "{{ 7*7 }}{% raw %}"
# Text that is stored as it is: SQL metacharacters and any unicode
VERBATIM = (SQL_DROP, SQL_OR, UNICODE)

TABLES = {
    "providers",
    "dossiers",
    "messages",
    "archive_items",
    "tasks",
    "timeline_events",
    "sign_links",
    "users",
    "web_sessions",
}


def tables_intact(engine: Engine) -> bool:
    """Whether every table of the records is still there."""
    return set(inspect(engine).get_table_names()) >= TABLES
