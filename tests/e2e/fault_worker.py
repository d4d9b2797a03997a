"""A worker process for the fault tests: the real one, with every send counted.

Run as `python tests/e2e/fault_worker.py` with the DOSSIER_* settings in the
environment. Each mail that reaches the mailer appends its Message-ID to
`<data_dir>/sent.log`; a test kills this process with SIGKILL and counts.
"""

from __future__ import annotations

import asyncio
import sys
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from activities.dossier import DossierActivities  # noqa: E402
from adapters.archive import LocalArchive  # noqa: E402
from adapters.mail import OutboxMailer  # noqa: E402
from adapters.records import make_engine, make_session_factory  # noqa: E402
from adapters.settings import Settings  # noqa: E402
from starter.client import connect  # noqa: E402
from worker import build_worker  # noqa: E402


class CountingMailer:
    """The outbox mailer, plus one line per send in `sent.log`."""

    def __init__(self, outbox: OutboxMailer, log: Path) -> None:
        self._outbox = outbox
        self._log = log

    def already_accepted(self, message: EmailMessage) -> bool:
        return self._log.exists() and message["Message-ID"] in self._log.read_text()

    def send(self, message: EmailMessage, data: bytes) -> None:
        self._outbox.send(message, data)
        with self._log.open("a") as log:
            log.write(f"{message['Message-ID']}\n")


async def main() -> None:
    settings = Settings()
    activities = DossierActivities(
        settings=settings,
        session_factory=make_session_factory(make_engine(settings.database_url)),
        archive=LocalArchive(settings.archive_dir),
        mailer=CountingMailer(
            OutboxMailer(settings.outbox_dir), Path(settings.data_dir) / "sent.log"
        ),
    )
    client = await connect(settings.temporal_address, settings.temporal_namespace)
    print("fault-worker ready", flush=True)
    await build_worker(client, settings, activities).run()


if __name__ == "__main__":
    asyncio.run(main())
