"""SendGrid Inbound Parse on the real app, SQLite, archive folder and dev server.

Posts are shaped as SendGrid sends them: multipart/form-data with `headers`,
`to`, `from`, `subject`, `text`, `charsets`, `envelope`, `attachments`,
`attachment-info` and files `attachment1..N`, or the whole mail in `email`
when "send raw" is on. No worker runs: an invoice only starts its workflow.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from adapters.archive import LocalArchive
from adapters.inbound import fields_in_text
from adapters.records import ArchiveItem, Dossier, Provider, TimelineEvent
from web.app import create_app

SECRET = "in-7f3a9c2e51"
URL = f"/webhooks/sendgrid/inbound/{SECRET}"
CONTAINER = "0412345614@containers.kmo-dossier.example"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "invoices"


@pytest.fixture
def make_api(
    dev_env, settings, session_factory, dossier_workflows_removed
) -> Callable[..., AsyncIterator[httpx.AsyncClient]]:
    """Start the app with settings changed as given; yields an ASGI client."""
    _add_provider(session_factory)

    async def start(**changes) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            settings.model_copy(
                update={"inbound_secret": SecretStr(SECRET), **changes}
            ),
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

    return start


@pytest.fixture
async def api(make_api) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the inbound secret set."""
    async for client in make_api():
        yield client


def _add_provider(session_factory) -> None:
    with session_factory() as session, session.begin():
        session.add(
            Provider(
                provider_id="0412345614",
                name="Opleidingen Peeters",
                dv_numbers=[],
                container_email=CONTAINER,
            )
        )


def parsed_post(
    *,
    to: str = CONTAINER,
    subject: str = "Documenten",
    text: bytes = b"Dag, in bijlage de documenten.",
    charsets: dict[str, str] | None = None,
    headers: str = "",
    attachments: list[tuple[str, bytes, str]] = (),
) -> tuple[dict, list]:
    """The form fields and files of a parsed-mode SendGrid post."""
    charsets = charsets or {"to": "UTF-8", "subject": "UTF-8", "text": "UTF-8"}
    headers = headers or f"From: An <an@bakkerij.example>\r\nTo: {to}\r\n"
    info = {
        f"attachment{n}": {"filename": name, "type": kind}
        for n, (name, _, kind) in enumerate(attachments, start=1)
    }
    data = {
        "headers": headers,
        "from": "An <an@bakkerij.example>",
        "to": to,
        "subject": subject,
        "text": text,
        "charsets": json.dumps(charsets),
        "envelope": json.dumps({"to": [to], "from": "an@bakkerij.example"}),
        "sender_ip": "192.0.2.10",
        "SPF": "pass",
        "attachments": str(len(attachments)),
        "attachment-info": json.dumps(info),
    }
    files = [
        (f"attachment{n}", (name, payload, kind))
        for n, (name, payload, kind) in enumerate(attachments, start=1)
    ]
    return data, files


async def post_parsed(api: httpx.AsyncClient, **mail) -> httpx.Response:
    data, files = parsed_post(**mail)
    return await api.post(URL, data=data, files=files or {"": ("", b"", "")})


def archived_mail(settings, key: str) -> EmailMessage:
    path = settings.archive_dir / key
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())


def open_training(number: str) -> bytes:
    """The open training invoice under an invoice number of this test."""
    text = (FIXTURES / "training-open-1p.xml").read_text(encoding="utf-8")
    return text.replace("LS-2026-0141", number).encode()


async def test_parsed_post_archives_the_mail_and_each_attachment(api, settings):
    """A parsed post to a container archives the .eml and every attachment."""
    response = await post_parsed(
        api,
        attachments=[
            ("notes.txt", b"zie bijlage", "text/plain"),
            ("foto.jpg", b"\xff\xd8\xff\xe0 jpeg", "image/jpeg"),
            ("offerte-2026.pdf", b"%PDF-1.7 quote", "application/pdf"),
        ],
    )

    assert response.status_code == 200
    answer = response.json()
    assert answer["route"] == "container"
    assert answer["container"] == "0412345614"
    assert [(a["name"], a["kind"]) for a in answer["attachments"]] == [
        ("01-notes.txt", "document"),
        ("02-foto.jpg", "document"),
        ("03-offerte-2026.pdf", "quote"),
    ]
    stored = settings.archive_dir / answer["attachments"][2]["key"]
    assert stored.read_bytes() == b"%PDF-1.7 quote"
    assert archived_mail(settings, answer["mail_key"])["To"] == CONTAINER


async def test_encoded_word_subject_is_read_decoded(api, settings):
    """An encoded-word subject reads as 'Factuur é': a PDF then needs its fields."""
    response = await post_parsed(
        api,
        subject="=?utf-8?q?Factuur_=C3=A9?=",
        headers=f"Subject: =?utf-8?q?Factuur_=C3=A9?=\r\nTo: {CONTAINER}\r\n",
        attachments=[("scan.pdf", b"%PDF-1.4 scan", "application/pdf")],
    )

    answer = response.json()
    assert archived_mail(settings, answer["mail_key"])["Subject"] == "Factuur é"
    [attachment] = answer["attachments"]
    assert attachment["kind"] == "pdf_invoice"
    assert attachment["note"] == (
        "PDF invoice: needs its fields to start a dossier; mail it again with "
        "them as 'key: value' lines in the text, or upload it with them"
    )


async def test_body_in_iso_8859_1_is_kept_intact(api, settings):
    """A text field declared ISO-8859-1 in `charsets` is archived as 'Groeten, René'."""
    response = await post_parsed(
        api,
        text="Groeten, René".encode("iso-8859-1"),
        charsets={"to": "UTF-8", "subject": "UTF-8", "text": "iso-8859-1"},
    )

    mail = archived_mail(settings, response.json()["mail_key"])
    assert mail.get_body(("plain",)).get_content() == "Groeten, René\r\n"


async def test_ubl_invoice_attachment_starts_a_dossier(api, dev_env):
    """A UBL invoice mailed to the container starts its dossier's workflow."""
    response = await post_parsed(
        api,
        attachments=[("factuur.xml", open_training("MAIL-UBL-1"), "text/xml")],
    )

    [attachment] = response.json()["attachments"]
    assert attachment["kind"] == "ubl_invoice"
    assert attachment["dossier_id"] == "0412345614-mail-ubl-1"
    assert attachment["note"] == "dossier started"
    handle = dev_env.client.get_workflow_handle("dossier-0412345614-mail-ubl-1")
    assert (await handle.describe()).id == "dossier-0412345614-mail-ubl-1"


async def test_xml_that_is_no_invoice_we_read_says_why(api, settings):
    """An invoice with a DOCTYPE, or XML of another kind, is kept with the reason."""
    doctype = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "e">]>'
        + open_training("MAIL-DTD-1").split(b"?>", 1)[1]
    )
    response = await post_parsed(
        api,
        attachments=[
            ("factuur.xml", doctype, "text/xml"),
            ("order.xml", b"<Order><ID>1</ID></Order>", "text/xml"),
        ],
    )

    notes = [a["note"] for a in response.json()["attachments"]]
    assert [a["kind"] for a in response.json()["attachments"]] == ["document"] * 2
    assert notes[0].startswith("kept, no dossier started: ")
    assert "DOCTYPE" in notes[0]
    assert notes[1].startswith("kept, no dossier started: ")


PDF_FIELD_LINES = """Dag, in bijlage factuur MAIL-PDF-1.

number: MAIL-PDF-1
issue_date: 2026-11-20
period_start: 2026-12-08
period_end = 2026-12-08
supplier_enterprise_number: BE0412345614
supplier_name: Leerhuis Schelde BV
customer_enterprise_number: 0511.223.355
customer_name: Bakkerij Peeters BV
contact_name: An Peeters
contact_email: an.peeters@bakkerij-peeters.example
dv_number: DV.O214567
participants: 1
total_excl_vat: 395,00
unknown_key: ignored

Groeten, Jan"""


def test_fields_in_text_takes_known_keys_only():
    """`key: value` and `key=value` lines of the upload's names; nothing else."""
    fields = fields_in_text(
        "number: A-1\nperiod_end = 2026-12-08\nnote: hi\n  dv_number :DV.O1 \n"
        "total_excl_vat:\ncontact_phone: +32\t15\n"
    )

    assert fields == {"number": "A-1", "period_end": "2026-12-08", "dv_number": "DV.O1"}


async def test_pdf_invoice_with_its_fields_in_the_mail_starts_a_dossier(
    api, dev_env, session_factory
):
    """The fields as lines of the mail's text: the PDF starts its dossier (fee 75)."""
    response = await post_parsed(
        api,
        subject="Factuur MAIL-PDF-1",
        text=PDF_FIELD_LINES.encode(),
        attachments=[("factuur.pdf", b"%PDF-1.4 factuur\n", "application/pdf")],
    )

    [attachment] = response.json()["attachments"]
    assert attachment["kind"] == "pdf_invoice"
    assert attachment["note"] == "dossier started"
    assert attachment["dossier_id"] == "0412345614-mail-pdf-1"
    handle = dev_env.client.get_workflow_handle("dossier-0412345614-mail-pdf-1")
    assert (await handle.describe()).id == "dossier-0412345614-mail-pdf-1"
    with session_factory() as session:
        row = session.get_one(Dossier, "0412345614-mail-pdf-1")
    assert (row.invoice_number, str(row.fee_excl_vat)) == ("MAIL-PDF-1", "75.00")


async def test_pdf_invoice_with_some_fields_says_which_are_missing(api):
    """Fields in the text but not all: kept, with the missing ones named."""
    text = "\n".join(
        line
        for line in PDF_FIELD_LINES.splitlines()
        if not line.startswith(("dv_number", "contact_email"))
    )
    response = await post_parsed(
        api,
        subject="Factuur MAIL-PDF-1",
        text=text.encode(),
        attachments=[("factuur.pdf", b"%PDF-1.4 factuur\n", "application/pdf")],
    )

    [attachment] = response.json()["attachments"]
    assert attachment["dossier_id"] is None
    assert attachment["note"].startswith("not started: ")
    assert "DV" in attachment["note"]
    assert "email" in attachment["note"]


async def test_raw_mode_post_is_routed_like_a_parsed_one(api, settings):
    """With "send raw" on, the `email` field's MIME mail is archived and read."""
    mail = EmailMessage()
    mail["From"] = "an@bakkerij.example"
    mail["To"] = CONTAINER
    mail["Subject"] = "Offerte"
    mail.set_content("In bijlage.")
    mail.add_attachment(b"%PDF-1.4 devis", "application", "pdf", filename="d.pdf")
    data = {
        "email": mail.as_bytes(),
        "envelope": json.dumps({"to": [CONTAINER], "from": "an@bakkerij.example"}),
        "charsets": json.dumps({"to": "UTF-8"}),
    }

    response = await api.post(URL, data=data, files={"": ("", b"", "")})

    assert response.status_code == 200
    answer = response.json()
    assert answer["route"] == "container"
    assert [(a["name"], a["kind"]) for a in answer["attachments"]] == [
        ("01-d.pdf", "quote")
    ]
    assert archived_mail(settings, answer["mail_key"])["Subject"] == "Offerte"


async def test_unknown_container_is_kept_in_quarantine(api, settings, session_factory):
    """Mail to an unknown container is archived in quarantine with its reason."""
    to = "0999999999@containers.kmo-dossier.example"

    response = await post_parsed(api, to=to)

    answer = response.json()
    assert answer["route"] == "quarantine"
    assert answer["reason"] == "unknown container or dossier"
    assert answer["mail_key"].startswith("quarantine/mail-")
    with session_factory() as session:
        names = session.scalars(
            select(ArchiveItem.name).where(ArchiveItem.container == "quarantine")
        ).all()
    assert sorted(names) == ["mail.eml", "manifest.json"]
    folder = (settings.archive_dir / answer["mail_key"]).parent
    [manifest] = folder.glob("*-manifest.json")
    assert json.loads(manifest.read_text())["reason"] == "unknown container or dossier"


async def test_reply_to_a_dossier_lands_on_its_timeline(api, session_factory):
    """Mail to dossier+<id> is archived under the dossier with a mail.received line."""
    with session_factory() as session, session.begin():
        session.add(
            Dossier(
                dossier_id="0412345614-reply-1",
                workflow_id="dossier-0412345614-reply-1",
                provider_id="0412345614",
                invoice_number="REPLY-1",
                kind="training",
                client_name="Bakkerij Peeters BV",
                client_enterprise_number="0203201340",
                step="terms",
            )
        )
    to = "dossier+0412345614-reply-1@containers.kmo-dossier.example"

    response = await post_parsed(api, to=to)
    await post_parsed(api, to=to)  # SendGrid retried

    answer = response.json()
    assert answer["route"] == "dossier"
    assert answer["mail_key"].startswith("0412345614/0412345614-reply-1/")
    with session_factory() as session:
        events = session.scalars(
            select(TimelineEvent.event).where(
                TimelineEvent.dossier_id == "0412345614-reply-1"
            )
        ).all()
    assert events == ["mail.received"]


async def test_wrong_secret_answers_404(api):
    """A post to another secret path answers 404 and stores nothing."""
    data, files = parsed_post()

    response = await api.post(
        "/webhooks/sendgrid/inbound/guess", data=data, files={"": ("", b"", "")}
    )

    assert response.status_code == 404


async def test_unset_secret_answers_404(make_api):
    """Without DOSSIER_INBOUND_SECRET the webhook does not exist: 404."""
    data, _ = parsed_post()
    async for api in make_api(inbound_secret=None):
        response = await api.post(URL, data=data, files={"": ("", b"", "")})

    assert response.status_code == 404


async def test_mail_over_the_limit_answers_413(make_api):
    """A post larger than DOSSIER_INBOUND_MAX_BYTES answers 413."""
    async for api in make_api(inbound_max_bytes=4096):
        response = await post_parsed(
            api, attachments=[("big.bin", b"x" * 8192, "application/octet-stream")]
        )

    assert response.status_code == 413


async def test_traversal_file_name_stays_inside_the_archive(api, settings):
    """An attachment named '../../../etc/passwd' is stored inside the archive."""
    response = await post_parsed(
        api,
        attachments=[
            ("../../../etc/passwd", b"root:x:0:0", "text/plain"),
            ("..\\..\\boot.ini", b"[boot]", "text/plain"),
        ],
    )

    attachments = response.json()["attachments"]
    assert [a["name"] for a in attachments] == ["01-passwd", "02-boot.ini"]
    root = settings.archive_dir.resolve()
    for attachment in attachments:
        path = (settings.archive_dir / attachment["key"]).resolve()
        assert path.is_relative_to(root)
        assert path.parent.parent.name == "0412345614"
