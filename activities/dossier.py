"""The dossier workflow's activities: mails, sign links, tasks, progress, documents.

Every activity is idempotent, so Temporal may retry it freely:

- `send_mail` records the mail (pending) before sending, keyed by the
  workflow's idempotency key; a mail already sent is not sent again, and a
  retry of an unfinished send composes the same bytes (same Message-ID, date
  and boundaries), which the outbox and the archive store once.
- sign links, tasks and archive objects have ids derived from their content;
  timeline events are keyed by the activity execution that wrote them.

Bad input raises a non-retryable ApplicationError that says what to fix;
I/O errors propagate so that Temporal retries. The work itself (database,
files, PDF) blocks, so each activity runs it in a thread with
`asyncio.to_thread`, which carries the activity context along; the worker
needs no activity executor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
import weasyprint  # type: ignore[import-untyped]  # ships no type hints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError
from weasyprint.text.fonts import (  # type: ignore[import-untyped]
    FontConfiguration,
)

from adapters.archive import (
    Archive,
    ArchiveCorrupted,
    ArchiveError,
    ArchiveNotFound,
    name_from_key,
    safe_name,
)
from adapters.links import sign_link_id, sign_token
from adapters.mail import (
    MailAttachment,
    Mailer,
    as_bytes,
    compose,
    message_id_for,
)
from adapters.records import (
    Dossier,
    Message,
    SignLink,
    Task,
    TimelineEvent,
    column_length,
    record_archived,
    save_dossier_if_changed,
    utcnow,
)
from adapters.settings import Settings
from adapters.templates import (
    DEFAULT_LANGUAGE,
    TEMPLATES_DIR,
    UnknownTemplate,
    mail_context,
    render_document,
    render_mail,
)
from kmo.addresses import InvalidAddress
from kmo.models import Kind
from kmo.rules import retention_until
from workflows.messages import (
    CertificateInput,
    CertificateResult,
    CloseInput,
    MailInput,
    MailResult,
    ProgressInput,
    SignLinksInput,
    SignLinksResult,
    TaskInput,
)

log = structlog.get_logger(__name__)

PENDING, SENT = "pending", "sent"
SIGN_LINK_VALIDITY = timedelta(days=30)
PROVIDER_TEMPLATES = frozenset({"final_report_request"})  # Dutch, to the provider
LOCAL_ZONE = ZoneInfo("Europe/Brussels")
_fonts = threading.local()


def font_config() -> FontConfiguration:
    """This thread's WeasyPrint font configuration, made once per thread.

    Making one (fontconfig and Pango set-up) is about 40% of a certificate's
    rendering; the PDF bytes are the same as with a new one each time. One per
    thread, because Pango's font maps are not meant to be shared by threads.
    """
    config = getattr(_fonts, "config", None)
    if config is None:
        config = _fonts.config = FontConfiguration()
    return config


def bad_input(message: str, error_type: str) -> ApplicationError:
    """An error that no retry can fix: the workflow (or staff) must act."""
    return ApplicationError(message, type=error_type, non_retryable=True)


class DossierActivities:
    """The activities, with the outside world given in the constructor."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        archive: Archive,
        mailer: Mailer,
        *,
        clock: Callable[[], datetime] = utcnow,
        templates_dir: Path = TEMPLATES_DIR,
    ) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._archive = archive
        self._mailer = mailer
        self._clock = clock
        self._templates_dir = templates_dir

    def all_activities(self) -> Sequence[Callable[..., Any]]:
        """The bound activity methods, for `Worker(activities=...)`."""
        return [
            self.send_mail,
            self.create_sign_links,
            self.open_task,
            self.record_progress,
            self.render_certificate,
            self.close_dossier,
        ]

    # --- mail ------------------------------------------------------------

    @activity.defn
    async def send_mail(self, mail: MailInput) -> MailResult:
        """Send one mail of a dossier once, and archive it."""
        return await asyncio.to_thread(self._send_mail, mail)

    def _send_mail(self, mail: MailInput) -> MailResult:
        dossier = mail.dossier
        logger = _logger(dossier.dossier_id).bind(
            template=mail.template, sequence=mail.sequence
        )
        recipients = [address.strip() for address in mail.to if address.strip()]
        if not recipients:
            raise bad_input(
                f"dossier {dossier.dossier_id} has no email address for the "
                f"'{mail.template}' mail; add the client's email with the details "
                "signal or on the staff page",
                "MissingRecipient",
            )

        pending = self._pending_message(mail, recipients)
        if pending.status == SENT:
            logger.info("mail.already_sent", message_id=pending.message_id)
            return MailResult(
                message_id=pending.message_id,
                archive_key=pending.archive_key or "",
                already_sent=True,
            )

        language = (
            DEFAULT_LANGUAGE
            if mail.template in PROVIDER_TEMPLATES
            else dossier.client.language
        )
        try:
            rendered = render_mail(
                mail.template,
                language,
                mail_context(
                    dossier,
                    sequence=mail.sequence,
                    sign_links=mail.sign_links,
                    extra=mail.extra,
                ),
                root=self._templates_dir,
            )
        except UnknownTemplate as error:
            raise bad_input(str(error), "UnknownTemplate") from error
        try:
            message = compose(
                key=mail.key,
                mail_domain=self._settings.mail_domain,
                provider_id=dossier.provider.provider_id,
                provider_name=dossier.provider.name,
                dossier_id=dossier.dossier_id,
                to=recipients,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                date=pending.created_at,
                attachments=[self._attachment(key) for key in mail.attachment_keys],
                headers={"X-Dossier-Template": mail.template},
            )
        except InvalidAddress as error:
            # Same type as a missing address: the workflow asks staff to fix it.
            # The address itself stays out of the message, which gets logged.
            raise bad_input(
                f"dossier {dossier.dossier_id} has no usable email address for the "
                f"'{mail.template}' mail: an address is malformed; correct the "
                "client's or participant's email with the details signal or on "
                "the staff page",
                "MissingRecipient",
            ) from error

        # Archive first: an archive outage then delays the mail instead of
        # mailing twice. A worker dying between the send and the commit below
        # is caught by asking the mailer whether it took this Message-ID; a
        # backend that cannot tell may send again, with the same Message-ID.
        # The archived copy is recorded in the same transaction as the send:
        # a retry archives the same bytes under the same key, so a worker
        # dying before that commit leaves nothing that the retry does not fix.
        data = as_bytes(message)
        name = f"{_mail_id(mail)}-{mail.sequence}.eml"
        item = self._archive.put(
            dossier.provider.provider_id,
            dossier.dossier_id,
            name,
            data,
            retain_until=retention_until(dossier.start_date),
            content_type="message/rfc822",
        )

        if self._mailer.already_accepted(message):
            logger.info("mail.accepted_before", message_id=pending.message_id)
        else:
            self._mailer.send(message, data)

        with self._sessions.begin() as session:
            record_archived(
                session,
                item,
                container=dossier.provider.provider_id,
                dossier_id=dossier.dossier_id,
                name=name,
                content_type="message/rfc822",
            )
            # The row committed as pending is updated without reading it again;
            # the UPDATE raises StaleDataError if the row has gone since.
            session.add(pending)
            pending.status = SENT
            pending.sent_at = self._clock()
            # The archived mail has the whole subject; long names can take it
            # past what the records keep.
            pending.subject = rendered.subject[: column_length(Message.subject)]
            pending.archive_key = item.key
            if mail.progress is not None:
                _note_progress(session, mail.progress)
        logger.info("mail.sent", message_id=pending.message_id, sha256=item.sha256)
        return MailResult(message_id=pending.message_id, archive_key=item.key)

    def _pending_message(self, mail: MailInput, recipients: list[str]) -> Message:
        """The mail's record, created as pending (and committed) before sending."""
        with self._sessions() as session:
            existing = session.get(Message, mail.key)
            if existing is not None:
                return existing
            save_dossier_if_changed(session, mail.dossier, _workflow_id())
            message = Message(
                key=mail.key,
                message_id=message_id_for(mail.key, self._settings.mail_domain),
                dossier_id=mail.dossier.dossier_id,
                template=mail.template,
                sequence=mail.sequence,
                recipients=recipients,
                subject="",
                status=PENDING,
                # Whole seconds: the Date header has no fraction, and a retry
                # must compose the same bytes from the stored time.
                created_at=self._clock().replace(microsecond=0),
            )
            session.add(message)
            try:
                session.commit()
            except IntegrityError:  # a concurrent attempt recorded it first
                session.rollback()
                return session.get_one(Message, mail.key)
            return message

    def _attachment(self, key: str) -> MailAttachment:
        try:
            data = self._archive.get(key)
            content_type = self._archive.stat(key).content_type
        except ArchiveNotFound as error:
            raise bad_input(
                f"attachment {key} is not in the archive", "MissingAttachment"
            ) from error
        except ArchiveCorrupted as error:
            raise bad_input(str(error), "ArchiveCorrupted") from error
        except ArchiveError as error:  # an invalid key
            raise bad_input(str(error), "MissingAttachment") from error
        return MailAttachment(name_from_key(key), data, content_type)

    # --- signing links ---------------------------------------------------

    @activity.defn
    async def create_sign_links(self, request: SignLinksInput) -> SignLinksResult:
        """One signing link per signer; the same signer keeps the same link."""
        return await asyncio.to_thread(self._create_sign_links, request)

    def _create_sign_links(self, request: SignLinksInput) -> SignLinksResult:
        dossier = request.dossier
        signers = list(dict.fromkeys(s.strip() for s in request.signers if s.strip()))
        if not signers:
            raise bad_input(
                f"dossier {dossier.dossier_id} has nobody to sign the "
                f"{request.document.value}; add the participants with the details "
                "signal or on the staff page",
                "MissingSigner",
            )

        now = self._clock()
        expires_at = now + SIGN_LINK_VALIDITY
        secret = self._settings.link_secret.get_secret_value()
        links: dict[str, str] = {}
        with self._sessions.begin() as session:
            save_dossier_if_changed(session, dossier, _workflow_id())
            for signer in signers:
                link_id = sign_link_id(
                    dossier.dossier_id, request.document.value, signer
                )
                row = session.get(SignLink, link_id)
                if row is None:
                    row = SignLink(
                        link_id=link_id,
                        dossier_id=dossier.dossier_id,
                        document=request.document.value,
                        signer=signer,
                        expires_at=expires_at,
                        created_at=now,
                    )
                    session.add(row)
                elif row.used_at is None and row.expires_at < expires_at:
                    row.expires_at = expires_at  # a reminder renews the link
                token = sign_token(secret, link_id)
                links[signer] = f"{self._settings.base_url}/sign/{token}"
        _logger(dossier.dossier_id).info(
            "sign_links.created", document=request.document.value, count=len(links)
        )
        return SignLinksResult(links=links)

    # --- records ---------------------------------------------------------

    @activity.defn
    async def open_task(self, request: TaskInput) -> None:
        """Create or update a staff task (a call, a review) by its id."""
        return await asyncio.to_thread(self._open_task, request)

    def _open_task(self, request: TaskInput) -> None:
        task = request.task
        if not task.task_id.strip():
            raise bad_input("a task needs a task_id", "InvalidInput")
        with self._sessions.begin() as session:
            row = session.get(Task, task.task_id)
            if row is None:
                row = Task(
                    task_id=task.task_id,
                    dossier_id=request.dossier_id,
                    created_at=self._clock(),
                )
                session.add(row)
            row.kind = task.kind
            row.step = task.step.value
            row.due = task.due
            row.reason = task.reason
            row.done = task.done
            row.outcome = task.outcome
            row.updated_at = self._clock()
        _logger(request.dossier_id).info(
            "task.opened", task_id=task.task_id, done=task.done
        )

    @activity.defn
    async def record_progress(self, progress: ProgressInput) -> None:
        """Keep the dossier's step and next deadline, and add to its timeline."""
        return await asyncio.to_thread(self._record_progress, progress)

    def _record_progress(self, progress: ProgressInput) -> None:
        info = activity.info()
        source = f"{info.workflow_run_id}/{info.activity_id}"
        logger = _logger(progress.dossier_id)
        with self._sessions.begin() as session:
            dossier = session.get(Dossier, progress.dossier_id)
            if dossier is None:
                logger.warning("progress.dossier_unknown", step=progress.step.value)
            else:
                dossier.step = progress.step.value
                dossier.next_deadline = progress.next_deadline
            already = session.scalar(
                select(TimelineEvent.id).where(TimelineEvent.source == source)
            )
            if progress.event and already is None:
                session.add(
                    TimelineEvent(
                        dossier_id=progress.dossier_id,
                        at=self._clock(),
                        event=progress.event,
                        detail=progress.detail,
                        step=progress.step.value,
                        source=source,
                    )
                )
        logger.info("progress.recorded", step=progress.step.value)

    @activity.defn
    async def close_dossier(self, request: CloseInput) -> None:
        """Note the dossier's end: outcome, fee and how long to keep it."""
        return await asyncio.to_thread(self._close_dossier, request)

    def _close_dossier(self, request: CloseInput) -> None:
        logger = _logger(request.dossier_id)
        with self._sessions.begin() as session:
            dossier = session.get(Dossier, request.dossier_id)
            if dossier is None:
                logger.warning("dossier.close_unknown", outcome=request.outcome.value)
                return
            dossier.closed_at = dossier.closed_at or self._clock()
            dossier.outcome = request.outcome.value
            dossier.step = request.outcome.value
            dossier.next_deadline = None
            dossier.retain_until = request.retention_until
            if request.fee is not None:
                dossier.fee_excl_vat = request.fee.total_excl_vat
                dossier.fee_vat = request.fee.vat
                dossier.fee_incl_vat = request.fee.total_incl_vat
        logger.info("dossier.closed", outcome=request.outcome.value)

    # --- documents -------------------------------------------------------

    @activity.defn
    async def render_certificate(self, request: CertificateInput) -> CertificateResult:
        """Render one participant's certificate as PDF and archive it."""
        return await asyncio.to_thread(self._render_certificate, request)

    def _render_certificate(self, request: CertificateInput) -> CertificateResult:
        dossier, participant = request.dossier, request.participant
        if dossier.kind != Kind.TRAINING:
            raise bad_input(
                f"dossier {dossier.dossier_id} is an advice: it ends with a final "
                "report, not a certificate",
                "InvalidInput",
            )
        if not participant.name.strip():
            raise bad_input(
                f"dossier {dossier.dossier_id}: a certificate needs the "
                "participant's name; add it with the details signal",
                "InvalidInput",
            )

        retain_until = retention_until(dossier.start_date)
        html = render_document(
            "certificate.html",
            dossier.client.language,
            {
                "dossier": dossier,
                "participant": participant,
                "provider": dossier.provider,
                "client": dossier.client,
                "training_name": dossier.title or None,
                "session_dates": dossier.session_dates,
                "issued_on": self._issued_on(),
                "retain_until": retain_until,
            },
            root=self._templates_dir,
        )
        pdf = weasyprint.HTML(string=html).write_pdf(font_config=font_config())
        assert pdf is not None  # write_pdf returns bytes when given no target
        name = f"certificaat-{participant.name}.pdf"
        item = self._archive.put(
            dossier.provider.provider_id,
            dossier.dossier_id,
            name,
            pdf,
            retain_until=retain_until,
            content_type="application/pdf",
        )
        with self._sessions.begin() as session:
            save_dossier_if_changed(session, dossier, _workflow_id())
            record_archived(
                session,
                item,
                container=dossier.provider.provider_id,
                dossier_id=dossier.dossier_id,
                name=name,
                content_type="application/pdf",
            )
        # The key holds the participant's name, so the log gets the hash only.
        _logger(dossier.dossier_id).info("certificate.rendered", sha256=item.sha256)
        return CertificateResult(archive_key=item.key, sha256=item.sha256)

    @staticmethod
    def _issued_on() -> date:
        """The day the activity was first scheduled, in Belgium: same on retries."""
        return activity.info().scheduled_time.astimezone(LOCAL_ZONE).date()


def _mail_id(mail: MailInput) -> str:
    """What tells the mail apart from others of its dossier: its template, or
    e.g. `certificate-2` for the second participant's (the key's middle part)."""
    parts = mail.key.split("/")
    return safe_name(parts[-2]) if len(parts) >= 3 and parts[-2] else mail.template


def _note_progress(session: Session, progress: ProgressInput) -> None:
    """Keep the step and next deadline of a dossier that is still open."""
    dossier = session.get(Dossier, progress.dossier_id)
    if dossier is None or dossier.closed_at is not None:
        return
    dossier.step = progress.step.value
    dossier.next_deadline = progress.next_deadline


def _workflow_id() -> str:
    workflow_id = activity.info().workflow_id
    if not workflow_id:
        raise bad_input(
            "dossier activities run only from a dossier workflow", "InvalidInput"
        )
    return workflow_id


def _logger(dossier_id: str) -> Any:
    info = activity.info()
    return log.bind(
        dossier_id=dossier_id,
        workflow_id=info.workflow_id,
        activity=info.activity_type,
        attempt=info.attempt,
    )
