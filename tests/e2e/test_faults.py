"""Nothing lost, nothing mailed twice, when parts of the service fail.

The real dev server, a real worker process (tests/e2e/fault_worker.py) that a
test kills with SIGKILL, real SQLite, archive and outbox. The worker counts
every mail that reaches its mailer in `sent.log`, the stand-in for the mail
provider's own log. After each test every mail was sent once, and every
archived document (invoice, certificate, final report, mails) is stored once,
recorded once, and hashes to its recorded SHA-256.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from adapters.archive import LocalArchive
from adapters.records import (
    ArchiveItem,
    Dossier,
    Message,
    make_engine,
    make_session_factory,
    upgrade_database,
)
from starter.intake import IntakeService, UploadDetails
from web.documents import archive_document
from workflows.dossier import DossierWorkflow
from workflows.messages import (
    ApplicationInput,
    DepositInput,
    DetailsInput,
    Document,
    FinalReportInput,
    Participant,
    PaymentInput,
    SignatureInput,
    Step,
)

pytestmark = pytest.mark.e2e

POSTGRES_HOST = "postgresql+psycopg://postgres@127.0.0.1"
POSTGRES = f"{POSTGRES_HOST}:5432"
WORKER_SCRIPT = Path(__file__).with_name("fault_worker.py")
PROJECT = WORKER_SCRIPT.parents[2]
PARTICIPANT = Participant("An Peeters", "an.peeters@bakkerij-peeters.example")
# onboarding, application, terms, deposit, attendance, satisfaction, certificate
MAILS_OF_A_PAID_TRAINING = 7
# application, terms, deposit, satisfaction, final report request, final report
MAILS_OF_A_PAID_ADVICE = 6
TRAINING_DOCUMENTS = {"training-open-1p.xml", "certificaat-An Peeters.pdf"}
ADVICE_DOCUMENTS = {"advice-cyber-6m.xml", "final_report-eindrapport.pdf"}
REPORT = b"%PDF-1.4 eindrapport cyberveiligheid\n"


@pytest.fixture
def fault_settings(settings, dev_env):
    address = dev_env.client.service_client.config.target_host
    return settings.model_copy(update={"temporal_address": address})


@asynccontextmanager
async def worker_process(settings) -> AsyncIterator[Callable[[], None]]:
    """Run the worker in its own process; yields a function that SIGKILLs it."""
    env = {
        **os.environ,
        "DOSSIER_DATA_DIR": str(settings.data_dir),
        "DOSSIER_DATABASE_URL": settings.database_url,
        "DOSSIER_TEMPORAL_ADDRESS": settings.temporal_address,
        "DOSSIER_TASK_QUEUE": settings.task_queue,
        "DOSSIER_LINK_SECRET": settings.link_secret.get_secret_value(),
    }
    process = subprocess.Popen(  # noqa: S603 - our own script, no shell
        [sys.executable, str(WORKER_SCRIPT)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = await asyncio.to_thread(process.stdout.readline)
        assert b"fault-worker ready" in line, "the worker did not start"
        yield lambda: process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.terminate()
        await asyncio.to_thread(process.wait, 30)


async def start_paid_training(
    settings, client, session_factory, invoice_number: str
) -> str:
    """Upload the open training and send every answer ahead of its step."""
    data = (PROJECT / "examples" / "invoices" / "training-open-1p.xml").read_bytes()
    data = data.replace(b"LS-2026-0141", invoice_number.encode())
    intake = IntakeService(
        settings, client, session_factory, LocalArchive(settings.archive_dir)
    )
    result = await intake.submit(
        data,
        "training-open-1p.xml",
        "application/xml",
        UploadDetails(participants=[PARTICIPANT]),
    )
    handle = client.get_workflow_handle(result.workflow_id)
    yesterday = date.today() - timedelta(days=1)
    for name, arg in [
        ("update_details", DetailsInput(session_dates=[yesterday])),
        ("record_application", ApplicationInput("KMO-FAULT-1")),
        ("record_signature", SignatureInput(Document.TERMS, "An Peeters")),
        ("record_deposit", DepositInput()),
        ("record_payment", PaymentInput()),
        (
            "record_signature",
            SignatureInput(
                Document.ATTENDANCE, "An Peeters", "An Peeters", day=yesterday
            ),
        ),
        ("record_signature", SignatureInput(Document.SATISFACTION, "An Peeters")),
    ]:
        await handle.signal(name, arg)
    return result.workflow_id


async def start_paid_advice(
    settings, client, session_factory, invoice_number: str
) -> str:
    """Upload the advice, archive its final report, send every answer ahead."""
    data = (PROJECT / "examples" / "invoices" / "advice-cyber-6m.xml").read_bytes()
    data = data.replace(b"CVA/26/031", invoice_number.encode())
    archive = LocalArchive(settings.archive_dir)
    intake = IntakeService(settings, client, session_factory, archive)
    result = await intake.submit(
        data,
        "advice-cyber-6m.xml",
        "application/xml",
        UploadDetails(has_platform_account=True),
    )
    with session_factory() as session:
        dossier = session.get_one(Dossier, result.dossier_id)
    report = archive_document(
        session_factory, archive, dossier, "final_report", "eindrapport.pdf", REPORT
    )
    handle = client.get_workflow_handle(result.workflow_id)
    for name, arg in [
        ("record_application", ApplicationInput("KMO-FAULT-2")),
        ("record_signature", SignatureInput(Document.TERMS, "Sofie De Smet")),
        ("record_payment", PaymentInput()),
        ("record_signature", SignatureInput(Document.SATISFACTION, "Sofie De Smet")),
        ("upload_final_report", FinalReportInput(report.key)),
    ]:
        await handle.signal(name, arg)
    return result.workflow_id


def unique_invoice_number() -> str:
    """The dev server outlives a test: each test has its own dossier."""
    return f"f-{uuid.uuid4().hex[:10]}"


async def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


def sent_log(settings) -> list[str]:
    log = Path(settings.data_dir) / "sent.log"
    return log.read_text().split() if log.exists() else []


def assert_each_mail_once(settings, session_factory, expected: int) -> None:
    """Every recorded mail was sent once, archived once, and nothing else went."""
    sends = Counter(sent_log(settings))
    with session_factory() as session:
        messages = session.scalars(select(Message)).all()
        items = session.scalars(
            select(ArchiveItem).where(ArchiveItem.content_type == "message/rfc822")
        ).all()
    archive = LocalArchive(settings.archive_dir)

    assert len(messages) == expected
    assert {m.status for m in messages} == {"sent"}
    assert sends == Counter({m.message_id: 1 for m in messages})
    assert sorted(i.key for i in items) == sorted(m.archive_key for m in messages)
    for item in items:
        assert archive.stat(item.key).sha256 == item.sha256


def assert_each_item_once(settings, session_factory, documents: dict[str, set[str]]):
    """Each dossier's documents are archived once; every item is whole and known.

    `documents` names each dossier's expected documents besides its mails. Two
    items of a dossier may share a name only when they are different mails
    (each the archive key of its own message); any other name is stored once.
    Every file of the archive is a recorded item, and its bytes hash to the
    SHA-256 of the records and of its sidecar.
    """
    with session_factory() as session:
        items = session.scalars(select(ArchiveItem)).all()
        mail_keys = [m.archive_key for m in session.scalars(select(Message))]
    root = Path(settings.archive_dir)
    archive = LocalArchive(root)
    stored = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and not path.name.endswith(".meta.json")
        and not path.name.startswith(".tmp-")  # a write cut short by SIGKILL
    )

    assert stored == sorted(item.key for item in items)
    for dossier_id, names in documents.items():
        own = [i for i in items if i.dossier_id == dossier_id]
        others = sorted(i.name for i in own if i.content_type != "message/rfc822")
        assert others == sorted(names), dossier_id
        mails = [i for i in own if i.content_type == "message/rfc822"]
        assert all(mail_keys.count(i.key) == 1 for i in mails), dossier_id
    assert {i.dossier_id for i in items} == set(documents)
    for item in items:
        data = (root / item.key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item.sha256, item.key
        assert archive.stat(item.key).sha256 == item.sha256, item.key
        assert archive.get(item.key) == data


async def test_worker_killed_mid_dossier_loses_and_doubles_nothing(
    fault_settings, dev_env, session_factory
):
    """SIGKILL after the first mail; a new worker finishes both dossiers, once each."""
    settings = fault_settings
    async with worker_process(settings) as kill:
        training_id = await start_paid_training(
            settings, dev_env.client, session_factory, unique_invoice_number()
        )
        advice_id = await start_paid_advice(
            settings, dev_env.client, session_factory, unique_invoice_number()
        )
        await wait_for(lambda: len(sent_log(settings)) >= 1)
        kill()

    async with worker_process(settings):
        results = [
            await asyncio.wait_for(
                dev_env.client.get_workflow_handle_for(
                    DossierWorkflow.run, workflow_id
                ).result(),
                timeout=120,
            )
            for workflow_id in (training_id, advice_id)
        ]

    assert [r.outcome for r in results] == [Step.CLOSED, Step.CLOSED]
    assert_each_mail_once(
        settings, session_factory, MAILS_OF_A_PAID_TRAINING + MAILS_OF_A_PAID_ADVICE
    )
    assert_each_item_once(
        settings,
        session_factory,
        {
            results[0].dossier_id: TRAINING_DOCUMENTS,
            results[1].dossier_id: ADVICE_DOCUMENTS,
        },
    )


@contextmanager
def unavailable(folder: Path):
    """Put a plain file where the folder was, so every write there fails."""
    folder.mkdir(parents=True, exist_ok=True)
    hidden = folder.with_name(folder.name + ".away")
    folder.rename(hidden)
    folder.write_bytes(b"")
    try:
        yield
    finally:
        folder.unlink()
        hidden.rename(folder)


async def test_archive_and_outbox_down_for_a_while_delay_but_lose_nothing(
    fault_settings, dev_env, session_factory
):
    """Writes fail for a few seconds; retries then deliver every mail once."""
    settings = fault_settings
    number = unique_invoice_number()
    dossier_folder = Path(settings.archive_dir) / "0412345614" / f"0412345614-{number}"
    async with worker_process(settings):
        with unavailable(Path(settings.outbox_dir)):
            workflow_id = await start_paid_training(
                settings, dev_env.client, session_factory, number
            )
            with unavailable(dossier_folder):
                await asyncio.sleep(5)
                assert sent_log(settings) == []
        handle = dev_env.client.get_workflow_handle_for(
            DossierWorkflow.run, workflow_id
        )
        result = await asyncio.wait_for(handle.result(), timeout=180)

    assert result.outcome == Step.CLOSED
    assert_each_mail_once(settings, session_factory, MAILS_OF_A_PAID_TRAINING)
    assert_each_item_once(
        settings, session_factory, {result.dossier_id: TRAINING_DOCUMENTS}
    )


class FaultProxy:
    """A TCP proxy on loopback that a test can cut and restore.

    Put between the worker and PostgreSQL, it makes the database unreachable
    for a while without touching the server other tests use.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._open += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, target), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database for one test, dropped afterwards."""
    name = f"dossier_fault_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
async def test_database_down_for_a_while_delays_but_loses_nothing(
    fault_settings, dev_env, postgres_database
):
    """PostgreSQL unreachable for seconds: retries then record every mail once."""
    direct = f"{POSTGRES}/{postgres_database}"
    upgrade_database(direct)
    engine = make_engine(direct)
    sessions = make_session_factory(engine)
    proxy = FaultProxy(("127.0.0.1", 5432))
    proxy.start()
    settings = fault_settings.model_copy(
        update={"database_url": f"{POSTGRES_HOST}:{proxy.port}/{postgres_database}"}
    )

    async with worker_process(settings):
        proxy.cut()
        workflow_id = await start_paid_training(
            settings, dev_env.client, sessions, unique_invoice_number()
        )
        await asyncio.sleep(5)
        assert sent_log(settings) == []
        proxy.start()
        handle = dev_env.client.get_workflow_handle_for(
            DossierWorkflow.run, workflow_id
        )
        result = await asyncio.wait_for(handle.result(), timeout=180)
    proxy.cut()

    assert result.outcome == Step.CLOSED
    assert_each_mail_once(settings, sessions, MAILS_OF_A_PAID_TRAINING)
    assert_each_item_once(settings, sessions, {result.dossier_id: TRAINING_DOCUMENTS})
    engine.dispose()
