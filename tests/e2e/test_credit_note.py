"""A credit note cancels the dossier of the invoice it names, through intake."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import select

from activities.dossier import DossierActivities
from adapters.archive import LocalArchive
from adapters.mail import OutboxMailer
from adapters.records import ArchiveItem
from starter.intake import IntakeError, IntakeService, UploadDetails
from tests.s3 import assert_every_item_on_s3
from worker import build_activities, build_worker
from workflows.dossier import DossierWorkflow
from workflows.messages import Step

pytestmark = pytest.mark.e2e


def invoice(invoices, number: str) -> bytes:
    text = (invoices / "training-open-1p.xml").read_text()
    return text.replace("LS-2026-0141", number).encode()


def credit_note(invoices, number: str, cancels: str) -> bytes:
    """The open training turned into a UBL CreditNote that names `cancels`."""
    text = (invoices / "training-open-1p.xml").read_text()
    text = text.replace(
        '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"',
        '<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"',
    ).replace("</Invoice>", "</CreditNote>")
    text = text.replace(
        "<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>",
        "<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>",
    )
    text = text.replace("<cbc:ID>LS-2026-0141</cbc:ID>", f"<cbc:ID>{number}</cbc:ID>")
    text = text.replace(
        "<cac:InvoicePeriod>",
        "<cac:BillingReference><cac:InvoiceDocumentReference>"
        f"<cbc:ID>{cancels}</cbc:ID>"
        "</cac:InvoiceDocumentReference></cac:BillingReference><cac:InvoicePeriod>",
    )
    text = text.replace("InvoiceLine>", "CreditNoteLine>")
    return text.replace("InvoicedQuantity", "CreditedQuantity").encode()


async def test_credit_note_cancels_the_running_dossier(
    dev_env, settings, session_factory, invoices
):
    """Invoice, then its credit note: the dossier ends cancelled, with no fee."""
    number = f"CN-TEST-{uuid.uuid4().hex[:8]}"
    intake = IntakeService(
        settings, dev_env.client, session_factory, LocalArchive(settings.archive_dir)
    )
    async with build_worker(dev_env.client, settings, build_activities(settings)):
        started = await intake.submit(
            invoice(invoices, number), "f.xml", "application/xml", UploadDetails()
        )
        cancelled = await intake.submit(
            credit_note(invoices, f"CN-{number}", cancels=number),
            "cn.xml",
            "application/xml",
            UploadDetails(),
        )
        handle = dev_env.client.get_workflow_handle_for(
            DossierWorkflow.run, started.workflow_id
        )
        result = await handle.result()

    assert cancelled.cancelled is True
    assert cancelled.dossier_id == started.dossier_id
    assert result.outcome == Step.CANCELLED
    assert result.fee is None


async def test_credit_note_for_an_unknown_invoice_is_refused(
    dev_env, settings, session_factory, invoices
):
    """A credit note naming no dossier we run says so, and stores nothing."""
    intake = IntakeService(
        settings, dev_env.client, session_factory, LocalArchive(settings.archive_dir)
    )

    with pytest.raises(IntakeError, match="no running dossier has that invoice"):
        await intake.submit(
            credit_note(invoices, "CN-X", cancels="NEVER-SEEN-1"),
            "cn.xml",
            "application/xml",
            UploadDetails(),
        )
    assert not settings.archive_dir.exists() or not any(
        p.is_file() for p in settings.archive_dir.rglob("*")
    )


async def test_a_credit_note_is_kept_and_recorded_with_its_dossier_on_s3(
    dev_env, settings, session_factory, invoices, s3_archive
):
    """On S3 the credit note is a recorded item, locked as long as its dossier."""
    number = f"CN-TEST-{uuid.uuid4().hex[:8]}"
    note = credit_note(invoices, f"CN-{number}", cancels=number)
    intake = IntakeService(settings, dev_env.client, session_factory, s3_archive)
    activities = DossierActivities(
        settings, session_factory, s3_archive, OutboxMailer(settings.outbox_dir)
    )
    async with build_worker(dev_env.client, settings, activities):
        started = await intake.submit(
            invoice(invoices, number), "f.xml", "application/xml", UploadDetails()
        )
        await intake.submit(note, "cn.xml", "application/xml", UploadDetails())
        handle = dev_env.client.get_workflow_handle_for(
            DossierWorkflow.run, started.workflow_id
        )
        result = await handle.result()

    assert result.outcome == Step.CANCELLED
    items = assert_every_item_on_s3(
        s3_archive,
        session_factory,
        {started.dossier_id: date(2036, 12, 8)},  # 10 years after 8 Dec 2026
    )
    [recorded] = [item for item in items if item.name == "cn.xml"]
    assert s3_archive.get(recorded.key) == note
    assert recorded.content_type == "application/xml"


async def test_the_same_credit_note_again_answers_as_a_repeat(
    dev_env, settings, session_factory, invoices
):
    """Once its dossier is cancelled, the same credit note is a repeat, not a 422.

    A different credit note for that closed dossier is still refused.
    """
    number = f"CN-TWICE-{uuid.uuid4().hex[:8]}"
    intake = IntakeService(
        settings, dev_env.client, session_factory, LocalArchive(settings.archive_dir)
    )
    note = credit_note(invoices, f"CN-{number}", cancels=number)
    async with build_worker(dev_env.client, settings, build_activities(settings)):
        started = await intake.submit(
            invoice(invoices, number), "f.xml", "application/xml", UploadDetails()
        )
        first = await intake.submit(note, "cn.xml", "application/xml", UploadDetails())
        handle = dev_env.client.get_workflow_handle(started.workflow_id)
        await handle.result()
        again = await intake.submit(note, "cn.xml", "application/xml", UploadDetails())
        other = note.replace(b"<cbc:Note>", b"<cbc:Note>tweede ", 1)
        with pytest.raises(IntakeError, match="no running dossier has that invoice"):
            await intake.submit(other, "cn2.xml", "application/xml", UploadDetails())

    assert (first.cancelled, again.cancelled) == (True, True)
    assert again.dossier_id == first.dossier_id
    with session_factory() as session:
        names = session.scalars(
            select(ArchiveItem.name).where(ArchiveItem.dossier_id == first.dossier_id)
        ).all()
    assert sum(1 for name in names if name.endswith("cn.xml")) == 1
    assert not any(name.endswith("cn2.xml") for name in names)
