"""The HTTP API on a real SQLite database, archive folder and Temporal dev server.

No worker runs here: an upload only starts the workflow. The server is shared
by the whole session and workflow ids come from the invoice number, so each
test that starts a dossier gives the invoice a number of its own, and removes
the workflows it started.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from adapters.archive import LocalArchive
from adapters.records import Dossier, TimelineEvent
from kmo.invoice import MAX_INVOICE_BYTES
from tests.hostile import NUL, SQL_DROP, SQL_OR, VERBATIM, tables_intact
from web.app import create_app
from workflows.messages import DossierInput

OPEN_TRAINING = "training-open-1p.xml"
CLIENT_EMAIL = (
    "<cbc:ElectronicMail>an.peeters@bakkerij-peeters.example</cbc:ElectronicMail>"
)


@pytest.fixture
async def api(
    dev_env, settings, session_factory, dossier_workflows_removed
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, called in-process through ASGI."""
    app = create_app(
        settings,
        temporal_client=dev_env.client,
        session_factory=session_factory,
        archive=LocalArchive(settings.archive_dir),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            yield client


def open_training(invoices: Path, number: str) -> bytes:
    """The open training invoice (fee 75) under another invoice number."""
    text = (invoices / OPEN_TRAINING).read_text(encoding="utf-8")
    return text.replace("LS-2026-0141", number).encode()


async def upload(
    api: httpx.AsyncClient, data: bytes, filename: str = OPEN_TRAINING, **form
) -> httpx.Response:
    files = {"invoice": (filename, data, "application/xml")}
    return await api.post("/api/dossiers", files=files, data=form)


async def test_upload_starts_a_dossier_and_answers_201(api, invoices: Path):
    """A good invoice answers 201 with the ids, the fee and the links."""
    response = await upload(api, open_training(invoices, "API-201"))

    assert response.status_code == 201
    answer = response.json()
    assert answer["dossier_id"] == "0412345614-api-201"
    assert answer["workflow_id"] == "dossier-0412345614-api-201"
    assert answer["created"] is True
    assert answer["fee"]["total_excl_vat"] == "75.00"
    assert answer["links"] == {
        "status": "http://testserver/api/dossiers/0412345614-api-201",
        "temporal_ui": "http://localhost:8233/namespaces/default/workflows/"
        "dossier-0412345614-api-201",
    }


async def test_second_upload_of_the_same_invoice_answers_200(api, invoices: Path):
    """Uploading the same invoice again finds the dossier: 200, same workflow id."""
    data = open_training(invoices, "API-REPEAT")

    first = await upload(api, data)
    second = await upload(api, data)

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["created"] is False
    assert second.json()["workflow_id"] == "dossier-0412345614-api-repeat"


async def test_changed_invoice_with_a_known_number_is_flagged(
    api, invoices: Path, session_factory
):
    """Same provider and number, other bytes: no second dossier, but a warning
    in the answer and a timeline line for staff (no personal data); the same
    bytes again stay a plain repeat."""
    first = open_training(invoices, "API-CHANGED")
    total = 'currencyID="EUR">395.00</cbc:TaxExclusiveAmount>'
    assert total.encode() in first
    changed = first.replace(total.encode(), total.replace("395", "995").encode())

    answers = [await upload(api, data) for data in (first, changed, changed, first)]

    assert [a.status_code for a in answers] == [201, 200, 200, 200]
    assert {a.json()["dossier_id"] for a in answers} == {"0412345614-api-changed"}
    codes = [[w["code"] for w in a.json()["warnings"]] for a in answers]
    assert ["invoice_changed" in c for c in codes] == [False, True, True, False]
    warning = next(
        w for w in answers[1].json()["warnings"] if w["code"] == "invoice_changed"
    )
    assert "differs from the first upload" in warning["message"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dossier)) == 1
        lines = session.scalars(
            select(TimelineEvent).where(TimelineEvent.event == "invoice.changed")
        ).all()
    assert [line.dossier_id for line in lines] == ["0412345614-api-changed"]
    assert "API-CHANGED" in lines[0].detail
    for personal in ("Peeters", "@", "Bakkerij"):
        assert personal not in lines[0].detail


async def test_upload_records_the_dossier_and_lists_it(api, invoices: Path):
    """After an upload, GET /api/dossiers lists it with its step, kind and fee."""
    await upload(api, open_training(invoices, "API-LIST"))

    response = await api.get("/api/dossiers")

    assert response.status_code == 200
    [row] = response.json()["dossiers"]
    assert row["dossier_id"] == "0412345614-api-list"
    assert row["kind"] == "training"
    assert row["client"]["name"] == "Bakkerij Peeters BV"
    assert row["fee"]["total_excl_vat"] == "75.00"


async def test_upload_without_client_email_answers_422_with_the_problem(
    api, invoices: Path
):
    """An invoice without client email cannot start: 422 naming the missing field."""
    text = (invoices / OPEN_TRAINING).read_text(encoding="utf-8")

    response = await upload(api, text.replace(CLIENT_EMAIL, "").encode())

    assert response.status_code == 422
    answer = response.json()
    assert answer["error"].startswith("LS-2026-0141 cannot start a dossier")
    assert "customer_contact.email" in [p["field"] for p in answer["problems"]]


async def test_upload_with_an_unreadable_amount_answers_422(api, invoices: Path):
    """An amount of NaN starts no dossier (no mail of EUR 0,00): 422 naming it."""
    total = '<cbc:TaxExclusiveAmount currencyID="EUR">395.00<'
    data = open_training(invoices, "API-NAN").decode()
    assert total in data

    response = await upload(
        api, data.replace(total, total.replace("395.00", "NaN")).encode()
    )

    assert response.status_code == 422
    problems = response.json()["problems"]
    assert [(p["code"], p["field"]) for p in problems] == [
        ("invalid_amount", "total_excl_vat")
    ]
    assert (await api.get("/api/dossiers")).json()["dossiers"] == []


async def test_pdf_upload_with_an_unreadable_amount_answers_422(api):
    """The PDF path's total_excl_vat field is checked the same way."""
    fields = {
        "number": "API-PDF-NAN",
        "period_start": "2026-12-08",
        "supplier_enterprise_number": "0412.345.614",
        "customer_enterprise_number": "0511.223.355",
        "contact_email": "an@bakkerij-peeters.example",
        "dv_number": "DV.O214567",
        "total_excl_vat": "NaN",
    }
    form = {f"field_{key}": value for key, value in fields.items()}

    response = await upload(api, b"%PDF-1.4\n%%EOF\n", filename="f.pdf", **form)

    assert response.status_code == 422
    answer = response.json()
    assert "total_excl_vat" in [p["field"] for p in answer["problems"]]
    assert answer["error"] == (
        "API-PDF-NAN cannot start a dossier: invoice API-PDF-NAN: the project "
        "amount excl. VAT (the total_excl_vat field) 'NaN' is not an "
        "amount like 1234.50, so no dossier can start from it"
    )


async def test_missing_client_email_can_be_given_in_the_form(api, invoices: Path):
    """The form's client_email fills what the invoice lacks: 201."""
    data = open_training(invoices, "API-FORM")

    response = await upload(
        api,
        data.replace(CLIENT_EMAIL.encode(), b""),
        client_email="an@bakkerij-peeters.example",
        participants="An Peeters <an@bakkerij-peeters.example>",
        session_dates="2026-12-08",
    )

    assert response.status_code == 201


async def test_unreadable_form_fields_answer_422_each_named(api, invoices: Path):
    """A bad session date and language are both reported, by field."""
    response = await upload(
        api,
        (invoices / OPEN_TRAINING).read_bytes(),
        session_dates="8 December",
        language="de",
    )

    assert response.status_code == 422
    fields = [p["field"] for p in response.json()["problems"]]
    assert fields == ["language", "session_dates"]


async def test_participants_as_json_are_checked_like_name_and_email(
    api, invoices: Path
):
    """A JSON list of participants gets the email check: one problem per bad entry."""
    participants = (
        '[{"name": "X", "email": "bad"}, {"name": "An", "email": "an@x.be"},'
        ' {"email": "no-name@x.be"}, "Jan <not-an-email>"]'
    )

    response = await upload(
        api, open_training(invoices, "API-JSON-P"), participants=participants
    )

    assert response.status_code == 422
    problems = response.json()["problems"]
    assert [(p["code"], p["field"]) for p in problems] == [
        ("invalid_participant", "participants")
    ] * 3
    assert '"bad" is not an email address' in problems[0]["message"]
    assert (await api.get("/api/dossiers")).json()["dossiers"] == []


@pytest.mark.parametrize(
    "participants", ['{"a": 1}', "[1, 2]", '[null, "Jan"]', "{not json"]
)
async def test_json_that_holds_no_participant_is_refused(
    api, invoices: Path, participants: str
):
    """An object without a name, numbers or null: 422, no dossier."""
    response = await upload(
        api, open_training(invoices, "API-JSON-X"), participants=participants
    )

    assert response.status_code == 422, response.text
    assert {p["field"] for p in response.json()["problems"]} == {"participants"}
    assert (await api.get("/api/dossiers")).json()["dossiers"] == []


async def test_good_participants_as_json_start_the_dossier(api, invoices: Path):
    """Valid JSON participants, with or without email, are taken."""
    participants = '[{"name": "An", "email": "an@x.be"}, {"name": "Jan"}, "Piet"]'

    response = await upload(
        api, open_training(invoices, "API-JSON-OK"), participants=participants
    )

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("provider", ["foo", "0412345615"])
async def test_unreadable_provider_answers_422_with_a_provider_problem(
    api, invoices: Path, provider: str
):
    """A provider number that is no enterprise number: 422 naming `provider`."""
    response = await upload(
        api, open_training(invoices, "API-PROVIDER"), provider=provider
    )

    assert response.status_code == 422
    answer = response.json()
    assert [(p["code"], p["field"]) for p in answer["problems"]] == [
        ("invalid_provider", "provider")
    ]
    assert answer["error"].startswith(f"provider: '{provider}' is not a")


async def test_upload_of_a_file_that_is_not_xml_answers_400(api):
    """A text file is no invoice: 400 with a message, no stack trace."""
    response = await upload(api, b"just some notes", filename="notes.xml")

    assert response.status_code == 400
    assert "notes.xml is not a readable XML e-invoice" in response.json()["error"]
    assert "Traceback" not in response.text


async def test_upload_larger_than_the_limit_answers_413(api):
    """An invoice one byte over the limit answers 413 without being read."""
    response = await upload(api, b"<" + b" " * MAX_INVOICE_BYTES)

    assert response.status_code == 413
    assert response.json()["error"] == "the invoice is too large; the limit is 5 MB"


async def test_body_far_over_the_limit_is_refused_before_parsing(api):
    """A 6 MB body is cut off by the body limit: 413 with the same message."""
    response = await upload(api, b"<" + b" " * (6 * 1024 * 1024))

    assert response.status_code == 413
    assert response.json()["error"] == "the invoice is too large; the limit is 5 MB"


async def test_upload_without_file_answers_422(api):
    """A form without the invoice field says which field is missing."""
    response = await api.post("/api/dossiers", data={"language": "nl"})

    assert response.status_code == 422
    assert response.json()["problems"][0]["field"] == "invoice"


async def test_unknown_dossier_answers_404(api):
    """GET of an id nobody knows answers 404 with a message."""
    response = await api.get("/api/dossiers/0412345614-nope")

    assert response.status_code == 404
    assert response.json()["error"] == "there is no dossier '0412345614-nope'"


async def test_known_dossier_without_worker_still_shows_its_record(api, invoices: Path):
    """With no worker to answer the query, status shows the record and says why."""
    await upload(api, open_training(invoices, "API-STATUS"))

    response = await api.get("/api/dossiers/0412345614-api-status")

    assert response.status_code == 200
    answer = response.json()
    assert answer["record"]["invoice_number"] == "API-STATUS"
    assert answer["status"] is None
    assert answer["status_error"] == "the workflow did not answer; is a worker running?"


async def test_health_and_readiness(api):
    """/healthz answers ok; /readyz finds the database and Temporal up."""
    health = await api.get("/healthz")
    ready = await api.get("/readyz")

    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "temporal": "ok"},
    }


async def test_unknown_route_answers_json_404(api):
    """Even a wrong path answers the API's error shape."""
    response = await api.get("/api/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "problems": []}


# --- PDF invoices: their fields come with the upload --------------------------

PDF_INVOICE = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
PDF_FIELDS = {
    "number": "API-PDF-1",
    "issue_date": "2026-11-20",
    "period_start": "08/12/2026",
    "period_end": "2026-12-08",
    "supplier_enterprise_number": "BE0412345614",
    "supplier_name": "Leerhuis Schelde BV",
    "customer_enterprise_number": "0511.223.355",
    "customer_name": "Bakkerij Peeters BV",
    "contact_name": "An Peeters",
    "contact_email": "an.peeters@bakkerij-peeters.example",
    "contact_phone": "+32 15 00 00 01",
    "dv_number": "DV O 214567",
    "participants": "1",
    "total_excl_vat": "395,00",
}


async def upload_pdf(api: httpx.AsyncClient, fields: dict[str, str], **form):
    files = {"invoice": ("factuur.pdf", PDF_INVOICE, "application/pdf")}
    data = {f"field_{key}": value for key, value in fields.items()} | form
    return await api.post("/api/dossiers", files=files, data=data)


async def test_pdf_invoice_with_its_fields_starts_an_open_training(
    api, session_factory
):
    """A PDF with field_<key> form fields is an open training of one: fee 75."""
    response = await upload_pdf(api, PDF_FIELDS)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["dossier_id"] == "0412345614-api-pdf-1"
    assert answer["fee"]["total_excl_vat"] == "75.00"
    assert [line["label"] for line in answer["fee"]["lines"]] == [
        "dossier",
        "participant",
    ]
    row = (await api.get("/api/dossiers/0412345614-api-pdf-1")).json()["record"]
    assert (row["kind"], row["invoice_number"]) == ("training", "API-PDF-1")
    assert row["client"]["name"] == "Bakkerij Peeters BV"


async def test_pdf_invoice_with_missing_fields_answers_422_naming_each(
    api, session_factory
):
    """Without number, client email and DV number: 422 listing those three."""
    missing = ("number", "contact_email", "dv_number")
    fields = {k: v for k, v in PDF_FIELDS.items() if k not in missing}

    response = await upload_pdf(api, fields)

    assert response.status_code == 422
    problems = response.json()["problems"]
    assert sorted(p["code"] for p in problems) == [
        "missing_client_email",
        "missing_dv_number",
        "missing_number",
    ]
    assert (await api.get("/api/dossiers")).json()["dossiers"] == []


async def test_pdf_invoice_without_any_field_answers_422_listing_them(api):
    """A bare PDF cannot start: 422 saying which fields to give, each named."""
    response = await upload_pdf(api, {})

    assert response.status_code == 422
    answer = response.json()
    assert "factuur.pdf is a PDF invoice: give its fields at upload" in answer["error"]
    assert [p["code"] for p in answer["problems"]] == [
        "missing_number",
        "missing_period_start",
        "missing_provider_enterprise_number",
        "missing_client_enterprise_number",
        "missing_client_email",
        "missing_total",
        "missing_dv_number",
    ]


# --- hostile text in the form fields ----------------------------------------


async def started_input(dev_env, workflow_id: str) -> DossierInput:
    """The dossier input a workflow was started with, read from its history."""
    handle = dev_env.client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events():
        started = event.workflow_execution_started_event_attributes
        [dossier] = await dev_env.client.data_converter.decode(
            started.input.payloads, [DossierInput]
        )
        return dossier
    raise AssertionError(f"no history for {workflow_id}")


@pytest.mark.parametrize("text", VERBATIM, ids=["drop-table", "or-1-1", "unicode"])
async def test_sql_and_unicode_in_form_fields_are_kept_verbatim(
    api, invoices: Path, dev_env, session_factory, text
):
    """Participants, contact name and phone reach the dossier as typed."""
    number = f"API-HOSTILE-{VERBATIM.index(text)}"
    response = await upload(
        api,
        open_training(invoices, number),
        participants=[f"{text} <an@bakkerij-peeters.example>", text],
        client_contact_name=text,
        client_phone=text,
    )

    assert response.status_code == 201, response.text
    dossier = await started_input(dev_env, response.json()["workflow_id"])
    assert [(p.name, p.email) for p in dossier.participants] == [
        (text, "an@bakkerij-peeters.example"),
        (text, None),
    ]
    assert (dossier.client.contact_name, dossier.client.phone) == (text, text)
    assert tables_intact(session_factory.kw["bind"])
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dossier)) == 1


@pytest.mark.parametrize(
    "email",
    [SQL_DROP, SQL_OR, f"{SQL_OR}@x.example", "an@x'; DROP TABLE dossiers; --"],
)
async def test_sql_in_the_client_email_is_refused_with_422(
    api, invoices: Path, session_factory, email
):
    """An email that is no address answers 422 naming the field; nothing stored."""
    response = await upload(
        api, open_training(invoices, "API-BAD-EMAIL"), client_email=email
    )

    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert [p["code"] for p in problems] == ["invalid_client_email"]
    assert tables_intact(session_factory.kw["bind"])
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dossier)) == 0


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"client_email": "jérôme@bakkerij-peeters.be"}, "invalid_client_email"),
        (
            {"participants": "Jérôme <jérôme@bakkerij-peeters.be>"},
            "invalid_participant",
        ),
        (
            {"participants": '[{"name": "Jérôme", "email": "jérôme@peeters.be"}]'},
            "invalid_participant",
        ),
    ],
    ids=["client", "participant", "participant-json"],
)
async def test_an_address_that_needs_smtputf8_is_refused_at_upload(
    api, invoices: Path, session_factory, form, code
):
    """Accents before the @: 422 saying so, rather than a first mail that fails."""
    response = await upload(api, open_training(invoices, "API-UTF8-MAIL"), **form)

    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert problem["code"] == code
    assert "before the @-sign" in problem["message"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dossier)) == 0


async def test_a_participant_at_a_domain_with_accents_is_mailed_in_ascii(
    api, invoices: Path, dev_env
):
    """The participant's address reaches the dossier with its IDNA domain."""
    response = await upload(
        api,
        open_training(invoices, "API-IDNA-MAIL"),
        participants=["An Peeters <an@bakkerij-peetérs.be>"],
    )

    assert response.status_code == 201, response.text
    dossier = await started_input(dev_env, response.json()["workflow_id"])
    assert [p.email for p in dossier.participants] == ["an@xn--bakkerij-peetrs-nnb.be"]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"participants": f"{NUL} <an@bakkerij-peeters.example>"}, "participants"),
        ({"participants": "An <an\x00@bakkerij-peeters.example>"}, "participants"),
        ({"client_contact_name": NUL}, "client_contact_name"),
        ({"client_phone": "+32\x00 15"}, "client_phone"),
        ({"client_email": "an\x00@bakkerij-peeters.example"}, "client_email"),
        ({"participants": "An\r\nBcc: x@evil.example"}, "participants"),
    ],
    ids=["participant-name", "participant-email", "contact", "phone", "email", "crlf"],
)
async def test_control_characters_in_form_fields_are_refused_with_422(
    api, invoices: Path, session_factory, form, field
):
    """NUL, CR and LF fit in no name, phone or address (nor in PostgreSQL text)."""
    response = await upload(api, open_training(invoices, "API-NUL"), **form)

    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert (problem["code"], problem["field"]) == ("control_character", field)
    assert "contains a control character" in problem["message"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Dossier)) == 0
