"""The dossier activities, run in Temporal's ActivityEnvironment on real adapters.

SQLite in the test's folder, the local archive (or S3Archive on the moto
server) and the outbox mailer: only the clock is fixed, so expected values can
be written out.
"""

from __future__ import annotations

import dataclasses
import email
import hashlib
import inspect
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import structlog.testing
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.dossier import DossierActivities
from adapters.archive import Archive, LocalArchive
from adapters.links import read_sign_token
from adapters.mail import OutboxMailer
from adapters.records import (
    ArchiveItem,
    Dossier,
    Message,
    SignLink,
    Task,
    TimelineEvent,
    save_dossier,
)
from adapters.settings import Settings
from tests.factories import advice_dossier, training_dossier
from tests.s3 import assert_every_item_on_s3
from workflows.messages import (
    CertificateInput,
    CloseInput,
    Document,
    MailInput,
    Participant,
    ProgressInput,
    SignLinksInput,
    Step,
    TaskInput,
)
from workflows.messages import Task as TaskInfo

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WORKFLOW_ID = "dossier-0412345614-ls-2026-0141"
TERMS_KEY = f"{WORKFLOW_ID}/terms/0"
TERMS_MESSAGE_ID = "<0f0285d7ec7d8ae339235d9c1efe69e7@kmo-dossier.example>"
CLIENT_EMAIL = "an.peeters@bakkerij-peeters.example"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FlakyMailer(OutboxMailer):
    """An outbox mailer whose first send fails like a dropped connection."""

    def __init__(self, outbox_dir: Path) -> None:
        super().__init__(outbox_dir)
        self.failures_left = 1

    def send(self, message: EmailMessage, data: bytes) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionResetError("mail server went away")
        super().send(message, data)


class FlakyArchive(LocalArchive):
    """A local archive whose first put fails like a full disk."""

    failures_left = 1

    def put(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.failures_left:
            self.failures_left -= 1
            raise OSError(28, "No space left on device")
        return super().put(*args, **kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def make_activities(
    settings: Settings, session_factory: sessionmaker[Session], clock: Clock
) -> Callable[..., DossierActivities]:
    def make(
        archive: Archive | None = None, mailer: OutboxMailer | None = None
    ) -> DossierActivities:
        return DossierActivities(
            settings=settings,
            session_factory=session_factory,
            archive=archive or LocalArchive(settings.archive_dir),
            mailer=mailer or OutboxMailer(settings.outbox_dir),
            clock=clock,
        )

    return make


@pytest.fixture
def activities(make_activities) -> DossierActivities:
    return make_activities()


@pytest.fixture
def env() -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        workflow_id=WORKFLOW_ID,
        workflow_run_id="run-1",
        activity_id="1",
        scheduled_time=datetime(2026, 12, 9, 7, 30, tzinfo=UTC),
    )
    return env


def terms_mail(**changes) -> MailInput:
    mail = MailInput(
        key=TERMS_KEY,
        dossier=training_dossier(),
        template="terms",
        to=[CLIENT_EMAIL],
        sign_links={"client": "http://localhost:8000/sign/abc"},
    )
    return dataclasses.replace(mail, **changes)


def outbox_files(settings: Settings) -> list[Path]:
    return sorted(settings.outbox_dir.glob("*.eml"))


def archived_files(settings: Settings) -> list[str]:
    return sorted(
        p.relative_to(settings.archive_dir).as_posix()
        for p in settings.archive_dir.rglob("*")
        if p.is_file() and not p.name.endswith(".meta.json")
    )


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def read_mail(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


# --- send_mail -------------------------------------------------------------


async def test_send_mail_writes_the_mail_and_archives_it(
    env, activities, settings, session_factory
) -> None:
    """A first send writes one .eml and archives the same bytes under the dossier."""
    result = await env.run(activities.send_mail, terms_mail())

    [eml] = outbox_files(settings)
    assert result.message_id == TERMS_MESSAGE_ID
    assert result.already_sent is False
    assert result.archive_key.startswith("0412345614/0412345614-ls-2026-0141/")
    assert result.archive_key.endswith("-terms-0.eml")
    assert LocalArchive(settings.archive_dir).get(result.archive_key) == (
        eml.read_bytes()
    )
    message = read_mail(eml)
    assert message["To"] == CLIENT_EMAIL
    assert message["Subject"] == (
        "KMO-portefeuille: uw rechten en plichten, ter ondertekening"
    )
    assert message["Date"] == "Tue, 01 Dec 2026 09:00:00 +0000"
    assert message["X-Dossier-Template"] == "terms"


async def test_send_mail_twice_sends_once(
    env, activities, settings, session_factory
) -> None:
    """The same key twice: one .eml, one archive object; the second is already sent."""
    first = await env.run(activities.send_mail, terms_mail())
    second = await env.run(activities.send_mail, terms_mail())

    assert second.already_sent is True
    assert second.message_id == first.message_id
    assert second.archive_key == first.archive_key
    assert len(outbox_files(settings)) == 1
    assert len(archived_files(settings)) == 1
    assert count(session_factory, ArchiveItem) == 1
    assert count(session_factory, Message) == 1


async def test_send_mail_records_the_message_as_sent(
    env, activities, session_factory
) -> None:
    """The message record ends as sent with subject, recipients and archive key."""
    result = await env.run(activities.send_mail, terms_mail())

    with session_factory() as session:
        row = session.get_one(Message, TERMS_KEY)
        assert row.status == "sent"
        assert row.message_id == result.message_id
        assert row.archive_key == result.archive_key
        assert row.recipients == [CLIENT_EMAIL]
        assert row.template == "terms"
        assert row.sent_at == NOW
        assert row.subject == (
            "KMO-portefeuille: uw rechten en plichten, ter ondertekening"
        )


async def test_send_mail_records_the_dossier(env, activities, session_factory) -> None:
    """A dossier unknown to the records is saved with the workflow's id."""
    await env.run(activities.send_mail, terms_mail())

    with session_factory() as session:
        row = session.get_one(Dossier, "0412345614-ls-2026-0141")
        assert row.workflow_id == WORKFLOW_ID
        assert row.fee_excl_vat == Decimal("75.00")


async def test_a_later_mail_brings_the_dossier_up_to_date(
    env, activities, session_factory
) -> None:
    """A mail whose dossier input changed since the last one refreshes the records."""
    await env.run(activities.send_mail, terms_mail())
    renamed = training_dossier(
        client=dataclasses.replace(
            training_dossier().client, name="Bakkerij Peeters & Zonen BV"
        )
    )

    await env.run(
        activities.send_mail,
        terms_mail(key=f"{WORKFLOW_ID}/terms/1", sequence=1, dossier=renamed),
    )

    with session_factory() as session:
        row = session.get_one(Dossier, "0412345614-ls-2026-0141")
        assert row.client_name == "Bakkerij Peeters & Zonen BV"


@pytest.mark.parametrize("activity", ["create_sign_links", "render_certificate"])
async def test_other_activities_record_an_unknown_dossier(
    env, activities, session_factory, activity
) -> None:
    """Sign links and certificates also save a dossier the records do not know."""
    request = {
        "create_sign_links": SignLinksInput(
            training_dossier(), Document.TERMS, ["client"]
        ),
        "render_certificate": CertificateInput(
            training_dossier(), Participant("An Peeters")
        ),
    }[activity]

    await env.run(getattr(activities, activity), request)

    with session_factory() as session:
        row = session.get_one(Dossier, "0412345614-ls-2026-0141")
        assert (row.workflow_id, row.client_name) == (
            WORKFLOW_ID,
            "Bakkerij Peeters BV",
        )


async def test_retry_after_a_failed_send_mails_once(
    env, make_activities, settings, session_factory
) -> None:
    """A send that failed is retried with the same Message-ID; one mail results."""
    activities = make_activities(mailer=FlakyMailer(settings.outbox_dir))

    with pytest.raises(ConnectionResetError):
        await env.run(activities.send_mail, terms_mail())
    with session_factory() as session:
        assert session.get_one(Message, TERMS_KEY).status == "pending"

    result = await env.run(activities.send_mail, terms_mail())

    assert result.already_sent is False
    assert len(outbox_files(settings)) == 1
    assert len(archived_files(settings)) == 1


async def test_a_message_row_gone_before_the_record_fails_and_the_retry_mails_once(
    env, make_activities, settings, session_factory
) -> None:
    """A pending row deleted during the send fails the attempt; the retry heals it."""

    class DeletingMailer(OutboxMailer):
        def send(self, message: EmailMessage, data: bytes) -> None:
            super().send(message, data)
            with session_factory.begin() as session:
                session.delete(session.get_one(Message, TERMS_KEY))

    with pytest.raises(StaleDataError):
        await env.run(
            make_activities(mailer=DeletingMailer(settings.outbox_dir)).send_mail,
            terms_mail(),
        )
    result = await env.run(make_activities().send_mail, terms_mail())

    assert result.message_id == TERMS_MESSAGE_ID
    assert len(outbox_files(settings)) == 1
    with session_factory() as session:
        assert session.get_one(Message, TERMS_KEY).status == "sent"


async def test_failed_archive_write_mails_nothing_and_the_retry_mails_once(
    env, make_activities, settings, session_factory
) -> None:
    """Archive down: no mail leaves; the retry mails once and archives once."""
    activities = make_activities(archive=FlakyArchive(settings.archive_dir))

    with pytest.raises(OSError, match="No space left"):
        await env.run(activities.send_mail, terms_mail())
    assert outbox_files(settings) == []

    result = await env.run(activities.send_mail, terms_mail())

    [eml] = outbox_files(settings)
    assert len(archived_files(settings)) == 1
    assert (
        LocalArchive(settings.archive_dir).get(result.archive_key) == eml.read_bytes()
    )


@pytest.mark.parametrize("to", [[], [""], ["  "]])
async def test_missing_recipient_is_not_retried(
    env, activities, settings, session_factory, to
) -> None:
    """Without an address the activity fails for good and says what to do."""
    with pytest.raises(ApplicationError) as raised:
        await env.run(activities.send_mail, terms_mail(to=to))

    assert raised.value.non_retryable is True
    assert raised.value.type == "MissingRecipient"
    assert raised.value.message == (
        "dossier 0412345614-ls-2026-0141 has no email address for the 'terms' "
        "mail; add the client's email with the details signal or on the staff page"
    )
    assert outbox_files(settings) == []
    assert count(session_factory, Message) == 0


@pytest.mark.parametrize("address", ["an.peeters@", "jérôme@bakkerij-peeters.be"])
async def test_malformed_recipient_is_not_retried(env, activities, address) -> None:
    """An address mail cannot go to fails for good, as a missing one, unquoted.

    Accents before the @ (SMTPUTF8) once raised the email package's own error,
    which Temporal retried for ever.
    """
    with pytest.raises(ApplicationError) as raised:
        await env.run(activities.send_mail, terms_mail(to=[address]))

    assert raised.value.non_retryable is True
    assert raised.value.type == "MissingRecipient"
    assert raised.value.message == (
        "dossier 0412345614-ls-2026-0141 has no usable email address for the "
        "'terms' mail: an address is malformed; correct the client's or "
        "participant's email with the details signal or on the staff page"
    )


async def test_unknown_template_is_not_retried(env, activities) -> None:
    """A template name that does not exist fails for good."""
    with pytest.raises(ApplicationError) as raised:
        await env.run(
            activities.send_mail,
            terms_mail(key=f"{WORKFLOW_ID}/welcome/0", template="welcome"),
        )

    assert raised.value.non_retryable is True
    assert raised.value.type == "UnknownTemplate"


async def test_attachments_come_from_the_archive(env, activities, settings) -> None:
    """An attachment key puts the archived file, with its name and type, in the mail."""
    stored = LocalArchive(settings.archive_dir).put(
        "0412345614",
        "0412345614-ls-2026-0141",
        "certificaat-An Peeters.pdf",
        b"%PDF-1.7 certificaat",
        retain_until=date(2036, 12, 8),
        content_type="application/pdf",
    )

    await env.run(
        activities.send_mail,
        terms_mail(
            key=f"{WORKFLOW_ID}/certificate/0",
            template="certificate",
            sign_links={},
            attachment_keys=[stored.key],
            extra={"participant": "An Peeters"},
        ),
    )

    [eml] = outbox_files(settings)
    [attachment] = list(read_mail(eml).iter_attachments())
    assert attachment.get_filename() == "certificaat-An_Peeters.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == b"%PDF-1.7 certificaat"


async def test_missing_attachment_is_not_retried(env, activities) -> None:
    """An attachment key with nothing archived fails for good."""
    with pytest.raises(ApplicationError) as raised:
        await env.run(
            activities.send_mail,
            terms_mail(
                attachment_keys=["0412345614/d/0000000000000000-eindrapport.pdf"]
            ),
        )

    assert raised.value.non_retryable is True
    assert raised.value.type == "MissingAttachment"


async def test_provider_mails_are_in_dutch(env, activities, settings) -> None:
    """The final report request goes to the provider in Dutch, whatever the client."""
    dossier = advice_dossier()
    dossier.client.language = "fr"

    await env.run(
        activities.send_mail,
        MailInput(
            key="dossier-0712345036-cva-26-031-e38a00/final_report_request/0",
            dossier=dossier,
            template="final_report_request",
            to=["0712345036@containers.kmo-dossier.example"],
        ),
    )

    [eml] = outbox_files(settings)
    assert read_mail(eml)["Subject"] == (
        "Eindrapport gevraagd: Drukkerij De Smet BV, factuur CVA/26/031"
    )


async def test_a_french_client_gets_a_french_reminder(
    env, activities, settings
) -> None:
    """The client's language picks the templates; a reminder says 'Rappel : '."""
    dossier = training_dossier()
    dossier.client.language = "fr"

    await env.run(
        activities.send_mail,
        terms_mail(key=f"{WORKFLOW_ID}/terms/1", dossier=dossier, sequence=1),
    )

    [eml] = outbox_files(settings)
    assert read_mail(eml)["Subject"] == (
        "Rappel : Portefeuille PME : vos droits et obligations, à signer"
    )


# --- create_sign_links -----------------------------------------------------


async def test_sign_links_are_stable_across_calls(
    env, activities, settings, session_factory
) -> None:
    """Asking twice gives each signer the same link id; one record per signer."""
    request = SignLinksInput(
        training_dossier(), Document.ATTENDANCE, ["An Peeters", "Jan Peeters"]
    )

    first = await env.run(activities.create_sign_links, request)
    second = await env.run(activities.create_sign_links, request)

    secret = settings.link_secret.get_secret_value()
    prefix = "http://localhost:8000/sign/"

    def link_ids(links: dict[str, str]) -> dict[str, str]:
        assert all(url.startswith(prefix) for url in links.values())
        return {
            signer: read_sign_token(secret, url.removeprefix(prefix))
            for signer, url in links.items()
        }

    assert list(first.links) == ["An Peeters", "Jan Peeters"]
    assert link_ids(first.links) == link_ids(second.links)
    assert count(session_factory, SignLink) == 2


async def test_sign_link_records_expire_after_30_days(
    env, activities, session_factory
) -> None:
    """A new link is valid for 30 days from its creation."""
    await env.run(
        activities.create_sign_links,
        SignLinksInput(training_dossier(), Document.TERMS, ["client"]),
    )

    with session_factory() as session:
        row = session.scalars(select(SignLink)).one()
        assert row.dossier_id == "0412345614-ls-2026-0141"
        assert row.document == "terms"
        assert row.signer == "client"
        assert row.expires_at == datetime(2026, 12, 31, 9, 0, tzinfo=UTC)
        assert row.used_at is None


async def test_a_reminder_renews_an_unused_link(
    env, activities, session_factory, clock
) -> None:
    """Asking again ten days later moves the expiry to 30 days from then."""
    request = SignLinksInput(training_dossier(), Document.TERMS, ["client"])
    await env.run(activities.create_sign_links, request)
    clock.now = NOW + timedelta(days=10)

    await env.run(activities.create_sign_links, request)

    with session_factory() as session:
        row = session.scalars(select(SignLink)).one()
        assert row.expires_at == datetime(2027, 1, 10, 9, 0, tzinfo=UTC)


async def test_no_signers_is_not_retried(env, activities) -> None:
    """An attendance list without participants fails for good, saying what to add."""
    with pytest.raises(ApplicationError) as raised:
        await env.run(
            activities.create_sign_links,
            SignLinksInput(training_dossier(), Document.ATTENDANCE, []),
        )

    assert raised.value.non_retryable is True
    assert raised.value.type == "MissingSigner"
    assert "add the participants" in raised.value.message


# --- tasks, progress, close ------------------------------------------------


def call_task(**changes) -> TaskInfo:
    task = TaskInfo(
        task_id="0412345614-ls-2026-0141-1",
        kind="call",
        step=Step.PAYMENT,
        due=date(2026, 12, 14),
        reason="call the client: the deposit is not in yet",
    )
    return dataclasses.replace(task, **changes)


async def test_open_task_twice_is_one_task(env, activities, session_factory) -> None:
    """Opening the same task again updates it instead of adding a second."""
    await env.run(
        activities.open_task, TaskInput("0412345614-ls-2026-0141", call_task())
    )
    await env.run(
        activities.open_task,
        TaskInput("0412345614-ls-2026-0141", call_task(done=True, outcome="reached")),
    )

    with session_factory() as session:
        [task] = session.scalars(select(Task)).all()
        assert (task.kind, task.step, task.due, task.done, task.outcome) == (
            "call",
            "payment",
            date(2026, 12, 14),
            True,
            "reached",
        )


async def test_record_progress_updates_the_dossier(
    env, activities, session_factory
) -> None:
    """The dossier's step and next deadline follow the workflow."""
    with session_factory.begin() as session:
        save_dossier(session, training_dossier(), WORKFLOW_ID)

    await env.run(
        activities.record_progress,
        ProgressInput(
            "0412345614-ls-2026-0141",
            Step.APPLICATION,
            next_deadline=date(2026, 12, 22),
            event="step.entered",
            detail="application",
        ),
    )

    with session_factory() as session:
        dossier = session.get_one(Dossier, "0412345614-ls-2026-0141")
        assert dossier.step == "application"
        assert dossier.next_deadline == date(2026, 12, 22)
        [event] = session.scalars(select(TimelineEvent)).all()
        assert (event.event, event.detail, event.step, event.at) == (
            "step.entered",
            "application",
            "application",
            NOW,
        )


async def test_a_retried_progress_writes_one_timeline_line(
    env, activities, session_factory
) -> None:
    """The same activity execution twice adds its timeline line once."""
    progress = ProgressInput(
        "0412345614-ls-2026-0141", Step.TERMS, event="step.entered", detail="terms"
    )

    await env.run(activities.record_progress, progress)
    await env.run(activities.record_progress, progress)

    assert count(session_factory, TimelineEvent) == 1


async def test_another_progress_execution_writes_another_line(
    env, activities, session_factory
) -> None:
    """A later activity with the same event is a new line of the timeline."""
    progress = ProgressInput(
        "0412345614-ls-2026-0141", Step.TERMS, event="reminder", detail="terms"
    )

    await env.run(activities.record_progress, progress)
    env.info = dataclasses.replace(env.info, activity_id="2")
    await env.run(activities.record_progress, progress)

    assert count(session_factory, TimelineEvent) == 2


async def test_close_dossier(env, activities, session_factory, clock) -> None:
    """Closing notes the time, outcome, fee and retention; a second close keeps them."""
    with session_factory.begin() as session:
        save_dossier(session, advice_dossier(), "dossier-0712345036-cva-26-031-e38a00")
    request = CloseInput(
        "0712345036-cva-26-031-e38a00",
        Step.CLOSED,
        advice_dossier().fee,
        date(2036, 6, 1),
    )

    await env.run(activities.close_dossier, request)
    clock.now = NOW + timedelta(hours=1)
    await env.run(activities.close_dossier, request)

    with session_factory() as session:
        row = session.get_one(Dossier, "0712345036-cva-26-031-e38a00")
        assert row.closed_at == NOW
        assert row.outcome == "closed"
        assert row.step == "closed"
        assert row.next_deadline is None
        assert row.retain_until == date(2036, 6, 1)
        assert (row.fee_excl_vat, row.fee_vat, row.fee_incl_vat) == (
            Decimal("225.00"),
            Decimal("47.25"),
            Decimal("272.25"),
        )


# --- certificate ---------------------------------------------------------


async def test_certificate_is_a_pdf_archived_with_its_hash(
    env, activities, settings, session_factory
) -> None:
    """The certificate is a PDF, stored under the dossier with the SHA-256 returned."""
    result = await env.run(
        activities.render_certificate,
        CertificateInput(training_dossier(), Participant("An Peeters")),
    )

    pdf = LocalArchive(settings.archive_dir).get(result.archive_key)
    assert pdf.startswith(b"%PDF")
    assert result.sha256 == hashlib.sha256(pdf).hexdigest()
    assert result.archive_key == (
        "0412345614/0412345614-ls-2026-0141/"
        f"{result.sha256[:16]}-certificaat-An_Peeters.pdf"
    )
    with session_factory() as session:
        row = session.get_one(ArchiveItem, result.archive_key)
        assert (row.content_type, row.retain_until, row.size) == (
            "application/pdf",
            date(2036, 12, 8),
            len(pdf),
        )


async def test_certificate_twice_is_one_object(env, activities, settings) -> None:
    """Rendering the same certificate again gives the same bytes and key."""
    request = CertificateInput(training_dossier(), Participant("An Peeters"))

    first = await env.run(activities.render_certificate, request)
    second = await env.run(activities.render_certificate, request)

    assert second == first
    assert len(archived_files(settings)) == 1


async def test_no_certificate_for_an_advice(env, activities) -> None:
    """An advice ends with a final report; asking a certificate fails for good."""
    with pytest.raises(ApplicationError) as raised:
        await env.run(
            activities.render_certificate,
            CertificateInput(advice_dossier(), Participant("Sofie De Smet")),
        )

    assert raised.value.non_retryable is True
    assert raised.value.type == "InvalidInput"


# --- on S3 -----------------------------------------------------------------

TRAINING_KEPT_UNTIL = date(2036, 12, 8)  # 10 years after the start, 8 Dec 2026


def certificate_mail(certificate_key: str) -> MailInput:
    return terms_mail(
        key=f"{WORKFLOW_ID}/certificate/0",
        template="certificate",
        sign_links={},
        attachment_keys=[certificate_key],
        extra={"participant": "An Peeters"},
    )


async def test_on_s3_every_mail_and_certificate_is_locked_for_ten_years(
    env, make_activities, settings, session_factory, s3_archive
) -> None:
    """On S3 the certificate and both mails are COMPLIANCE-locked, as recorded."""
    activities = make_activities(archive=s3_archive)

    await env.run(activities.send_mail, terms_mail())
    certificate = await env.run(
        activities.render_certificate,
        CertificateInput(training_dossier(), Participant("An Peeters")),
    )
    await env.run(activities.send_mail, certificate_mail(certificate.archive_key))

    items = assert_every_item_on_s3(
        s3_archive,
        session_factory,
        {"0412345614-ls-2026-0141": TRAINING_KEPT_UNTIL},
    )
    assert sorted((i.name, i.content_type) for i in items) == [
        ("certificaat-An Peeters.pdf", "application/pdf"),
        ("certificate-0.eml", "message/rfc822"),
        ("terms-0.eml", "message/rfc822"),
    ]
    with session_factory() as session:
        sent = {m.template: m.archive_key for m in session.scalars(select(Message))}
    mails = {read_mail(p)["X-Dossier-Template"]: p for p in outbox_files(settings)}
    for template in ("terms", "certificate"):
        assert s3_archive.get(sent[template]) == mails[template].read_bytes()
    [attachment] = list(read_mail(mails["certificate"]).iter_attachments())
    assert attachment.get_content() == s3_archive.get(certificate.archive_key)


async def test_on_s3_a_retried_send_and_certificate_write_one_version_each(
    env, make_activities, settings, session_factory, s3_archive
) -> None:
    """A send retried after a failure, and a certificate made twice: one version."""
    activities = make_activities(
        archive=s3_archive, mailer=FlakyMailer(settings.outbox_dir)
    )
    request = CertificateInput(training_dossier(), Participant("An Peeters"))

    with pytest.raises(ConnectionResetError):
        await env.run(activities.send_mail, terms_mail())
    await env.run(activities.send_mail, terms_mail())
    await env.run(activities.render_certificate, request)
    await env.run(activities.render_certificate, request)

    items = assert_every_item_on_s3(
        s3_archive,
        session_factory,
        {"0412345614-ls-2026-0141": TRAINING_KEPT_UNTIL},
    )
    versions = s3_archive._client.list_object_versions(Bucket=s3_archive.bucket)
    assert sorted(v["Key"] for v in versions["Versions"]) == [i.key for i in items]
    assert len(items) == 2
    assert len(outbox_files(settings)) == 1


# --- registration ----------------------------------------------------------


def test_all_activities(activities) -> None:
    """The worker registers six async activities under the names workflows call."""
    registered = activities.all_activities()

    assert [a.__name__ for a in registered] == [
        "send_mail",
        "create_sign_links",
        "open_task",
        "record_progress",
        "render_certificate",
        "close_dossier",
    ]
    assert all(inspect.iscoroutinefunction(a) for a in registered)


# --- logging -------------------------------------------------------------


async def test_logs_carry_ids_and_no_personal_data(env, activities) -> None:
    """Mail and certificate events name the dossier, never an address or a person."""
    with structlog.testing.capture_logs() as logs:
        await env.run(activities.send_mail, terms_mail())
        await env.run(
            activities.render_certificate,
            CertificateInput(training_dossier(), Participant("An Peeters")),
        )

    assert [entry["event"] for entry in logs] == ["mail.sent", "certificate.rendered"]
    for entry in logs:
        assert entry["dossier_id"] == "0412345614-ls-2026-0141"
        assert entry["workflow_id"] == WORKFLOW_ID
        text = repr(entry)
        assert CLIENT_EMAIL not in text
        assert "An Peeters" not in text
        assert "An_Peeters" not in text
        assert "/sign/" not in text
