"""Hostile input gets nowhere: a clear outcome, and nothing stored half.

Each case goes through the same intake that uploads, mail and the command line
use. The API cases run the real app on SQLite and a local archive, with the
Temporal dev server of the test session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from adapters.archive import LocalArchive
from adapters.records import Dossier
from adapters.templates import mail_context, render_document, render_mail
from starter.intake import IntakeError, UploadDetails, prepare
from web.app import create_app
from workflows.messages import Participant

INVOICES = Path(__file__).resolve().parent / "fixtures" / "invoices"
OPEN_TRAINING = (INVOICES / "training-open-1p.xml").read_bytes()
SCRIPT = "<script>alert('x')</script>"
TEMPLATE_SYNTAX = "{{ 7 * 7 }}{% raw %}"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol3;</Invoice>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&xxe;</Invoice>
"""


def with_names(name: str, number: str = "LS-2026-0141") -> bytes:
    """The open training with `name` as client, contact and participant."""
    text = OPEN_TRAINING.decode()
    for original in ("Bakkerij Peeters BV", "An Peeters"):
        text = text.replace(original, escape_xml(name))
    return text.replace("LS-2026-0141", escape_xml(number)).encode()


def escape_xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_html_and_template_syntax_in_names_stay_text_in_mails():
    """A name with markup and Jinja syntax is escaped in HTML and never evaluated."""
    hostile = SCRIPT + TEMPLATE_SYNTAX
    dossier = prepare(with_names(hostile), "x.xml", UploadDetails()).dossier

    mail = render_mail("onboarding", "nl", mail_context(dossier))

    assert SCRIPT not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert "49" not in mail.text + mail.html
    assert "{{ 7 * 7 }}" in mail.text


def test_html_in_a_participant_name_is_escaped_on_the_certificate():
    """The certificate's HTML (the PDF's source) shows the name as text."""
    dossier = prepare(with_names(SCRIPT), "x.xml", UploadDetails()).dossier
    participant = Participant(SCRIPT + TEMPLATE_SYNTAX)

    html = render_document(
        "certificate.html",
        "nl",
        {
            "dossier": dossier,
            "participant": participant,
            "provider": dossier.provider,
            "client": dossier.client,
            "training_name": SCRIPT,
            "session_dates": [],
            "issued_on": date(2026, 12, 9),
            "retain_until": date(2036, 12, 8),
        },
    )

    assert SCRIPT not in html
    assert "&lt;script&gt;" in html
    assert "49" not in html


@given(data=st.binary(max_size=4096))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_intake_of_random_bytes_never_crashes(data):
    """Any bytes give a prepared invoice or an IntakeError, nothing else."""
    try:
        prepare(data, "fuzz.xml", UploadDetails())
    except IntakeError as error:
        assert error.status_code in (400, 413, 422)


@given(
    position=st.integers(min_value=0, max_value=len(OPEN_TRAINING) - 1),
    junk=st.binary(min_size=1, max_size=16),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_intake_of_damaged_invoices_never_crashes(position, junk):
    """A real invoice with bytes overwritten reads, or is refused clearly."""
    data = OPEN_TRAINING[:position] + junk + OPEN_TRAINING[position + len(junk) :]
    try:
        prepare(data, "fuzz.xml", UploadDetails(client_email="a@b.example"))
    except IntakeError as error:
        assert error.message


# --- through the API: refused, and nothing kept ------------------------------


@pytest.fixture
async def api(
    dev_env, settings, session_factory, dossier_workflows_removed
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings,
        temporal_client=dev_env.client,
        session_factory=session_factory,
        archive=LocalArchive(settings.archive_dir),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (BILLION_LAUGHS, 400),
        (EXTERNAL_ENTITY, 400),
        (b"", 400),
        (b"\xff\xfe\x00<not xml", 400),
        (
            OPEN_TRAINING.replace(b"UTF-8", b"ISO-8859-1").replace(b"Kaai", b"K\xe9ai"),
            201,
        ),
        (with_names(SCRIPT, number="../../etc/passwd"), 201),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "empty",
        "binary",
        "latin-1",
        "traversal",
    ],
)
async def test_hostile_uploads_get_a_clear_answer(
    api, settings, session_factory, data, status
):
    """Refused uploads store nothing; accepted ones store only inside the archive."""
    response = await api.post(
        "/api/dossiers", files={"invoice": ("../../evil.xml", data, "text/xml")}
    )

    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    archive = Path(settings.archive_dir)
    stored = [p for p in archive.rglob("*") if p.is_file()] if archive.exists() else []
    with session_factory() as session:
        rows = session.scalar(select(func.count()).select_from(Dossier))
    if status >= 400:
        assert (stored, rows) == ([], 0)
        assert response.json()["error"]
    else:
        assert rows == 1
        assert all(archive.resolve() in p.resolve().parents for p in stored)
        assert not any(".." in p.name for p in stored)


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"client_contact_name": "Jan\r\nBcc: evil@x.example"}, "client_contact_name"),
        ({"client_phone": "+32 15\n00 00 01"}, "client_phone"),
        ({"client_email": "an@x.example\r\nBcc: evil@x.example"}, "client_email"),
        (
            {"participants": "Jan\r\nBcc: evil@x.example <jan@x.example>"},
            "participants",
        ),
        (
            {"participants": '[{"name": "Jan\\r\\nBcc: x", "email": "j@x.be"}]'},
            "participants",
        ),
        ({"participants": "An\tPeeters"}, "participants"),
        ({"client_contact_name": "Jan\x00"}, "client_contact_name"),
        ({"client_contact_name": "Jan\u2028Peeters"}, "client_contact_name"),
    ],
    ids=[
        "crlf-name",
        "lf-phone",
        "crlf-email",
        "crlf-participant",
        "json",
        "tab",
        "nul",
        "u2028",
    ],
)
async def test_control_characters_in_upload_fields_are_refused(
    api, session_factory, form, field
):
    """A line break or other control character in a free-text field: 422, named."""
    response = await api.post(
        "/api/dossiers",
        files={"invoice": ("i.xml", OPEN_TRAINING, "text/xml")},
        data=form,
    )

    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert (problem["code"], problem["field"]) == ("control_character", field)
    assert "control character" in problem["message"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dossier)) == 0


def test_control_characters_in_a_pdf_field_are_refused():
    """The PDF upload's fields are free text too."""
    from web.forms import FormError, build_details

    with pytest.raises(FormError) as refused:
        build_details(fields={"contact_name": "Jan\r\nBcc: evil@x.example"})

    assert [p.field for p in refused.value.problems] == ["field_contact_name"]


def test_deeply_nested_xml_is_refused_in_the_users_terms():
    """Nesting past libxml2's limit says so, not "use XML_PARSE_HUGE option"."""
    depth = 300
    body = b"<a>" * depth + b"</a>" * depth
    data = OPEN_TRAINING.replace(b"</Invoice>", body + b"</Invoice>")

    with pytest.raises(IntakeError) as refused:
        prepare(data, "deep.xml", UploadDetails())

    message = refused.value.message
    assert "XML_PARSE_HUGE" not in message
    assert "nested too deeply" in message
    assert "256" in message
