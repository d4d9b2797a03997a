"""Custom search attributes, so staff can filter dossiers in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

STEP = SearchAttributeKey.for_keyword("DossierStep")
KIND = SearchAttributeKey.for_keyword("DossierKind")
PROVIDER = SearchAttributeKey.for_keyword("ProviderId")
CLIENT = SearchAttributeKey.for_keyword("ClientEnterpriseNumber")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")

ALL = (STEP, KIND, PROVIDER, CLIENT, NEXT_DEADLINE)


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        kind = "Datetime" if key is NEXT_DEADLINE else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
