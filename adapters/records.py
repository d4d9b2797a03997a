"""The records: what the service knows about providers, dossiers, mails and documents.

SQLAlchemy 2 typed models, SQLite on one machine and PostgreSQL in production;
the schema is owned by the Alembic migrations in `adapters/migrations/`.
Datetimes are timezone-aware UTC on both databases.

Of the dossier tables only `dossiers.provider_id` is a foreign key: activities
write messages, tasks, timeline events, sign links and archive items in
whatever order a workflow runs them, sometimes before the dossier row exists,
so those tables refer to a dossier by an indexed `dossier_id` instead. The
portal's users and web sessions do use foreign keys.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
)

from adapters.archive import ArchivedItem
from workflows.messages import DossierInput, Step

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, also on SQLite (which stores no offset)."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


Money = Numeric(12, 2)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Provider(Base):
    """A registered provider (dienstverlener) and its container."""

    __tablename__ = "providers"

    provider_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dv_numbers: Mapped[list[str]] = mapped_column(JSON, default=list)
    container_email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dossier(Base):
    """One sale with the KMO-portefeuille: one invoice, one client, one workflow."""

    __tablename__ = "dossiers"
    __table_args__ = (UniqueConstraint("provider_id", "invoice_number"),)

    dossier_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.provider_id"))
    invoice_number: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    client_name: Mapped[str] = mapped_column(String(200))
    client_enterprise_number: Mapped[str] = mapped_column(String(20), index=True)
    step: Mapped[str] = mapped_column(String(20), index=True)
    next_deadline: Mapped[date | None] = mapped_column(Date)
    fee_excl_vat: Mapped[Decimal | None] = mapped_column(Money)
    fee_vat: Mapped[Decimal | None] = mapped_column(Money)
    fee_incl_vat: Mapped[Decimal | None] = mapped_column(Money)
    # Kept for the annual cap at intake; start_date None: recorded before 0003.
    start_date: Mapped[date | None] = mapped_column(Date)
    expected_subsidy: Mapped[Decimal | None] = mapped_column(Money)
    warnings: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))
    retain_until: Mapped[date | None] = mapped_column(Date)


class Message(Base):
    """A mail of a dossier; `key` is the idempotency key of the send."""

    __tablename__ = "messages"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    dossier_id: Mapped[str] = mapped_column(String(100), index=True)
    template: Mapped[str] = mapped_column(String(50))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(10), default="pending")
    archive_key: Mapped[str | None] = mapped_column(String(600))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class ArchiveItem(Base):
    """What the records know of one archived document or mail."""

    __tablename__ = "archive_items"

    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    container: Mapped[str] = mapped_column(String(100))
    dossier_id: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    retain_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """Work for staff: a phone call to make or a dossier to review."""

    __tablename__ = "tasks"

    task_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    step: Mapped[str] = mapped_column(String(20))
    due: Mapped[date] = mapped_column(Date, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TimelineEvent(Base):
    """One line of a dossier's history.

    `source` names the activity execution that wrote it (workflow run and
    activity id), so a retried activity does not write the line twice.
    """

    __tablename__ = "timeline_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dossier_id: Mapped[str] = mapped_column(String(100), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text, default="")
    step: Mapped[str | None] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(400), unique=True)


class SignLink(Base):
    """An emailed link through which one signer signs one document."""

    __tablename__ = "sign_links"

    link_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(String(100), index=True)
    document: Mapped[str] = mapped_column(String(20))
    signer: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """Someone who logs in to the portal: a provider's employee or staff.

    A provider user sees its own provider's dossiers only; staff see all.
    The email is kept lowercase so that one address is one account.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint(
            "(role = 'provider' AND provider_id IS NOT NULL)"
            " OR (role = 'staff' AND provider_id IS NULL)",
            name="role_and_provider",
        ),
    )

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    provider_id: Mapped[str | None] = mapped_column(
        ForeignKey("providers.provider_id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class WebSession(Base):
    """A logged-in browser of the portal.

    `session_id` is the SHA-256 of the cookie's random token, so a copy of the
    database lets nobody in; `csrf_token` goes into every form of the session.
    """

    __tablename__ = "web_sessions"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))


# --- engine and schema ---------------------------------------------------


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; on SQLite with foreign keys on, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs the log at checkpoints rather than at every
    # commit: a killed process loses nothing, a power cut may lose the last
    # commits but never corrupts the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic's configuration without an ini file; the URL travels unparsed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` by running the migrations."""
    command.upgrade(alembic_config(url), revision)


# --- writes shared by intake and activities ------------------------------


def column_length(attribute: Any) -> int:
    """The declared length of a String(n) column, e.g. `Dossier.client_name`."""
    length: int = attribute.property.columns[0].type.length
    return length


def save_dossier(session: Session, dossier: DossierInput, workflow_id: str) -> Dossier:
    """Create or refresh the provider and dossier rows from a dossier's input.

    Progress (step, deadline, outcome) is left alone when the row exists.
    """
    provider = session.get(Provider, dossier.provider.provider_id)
    if provider is None:
        provider = Provider(
            provider_id=dossier.provider.provider_id,
            name=dossier.provider.name,
            dv_numbers=[],
            container_email=dossier.provider.container_email,
            created_at=utcnow(),
        )
        session.add(provider)
    for column, value in _provider_columns(dossier).items():
        setattr(provider, column, value)
    known = provider.dv_numbers
    dv_numbers = [known] if isinstance(known, str) else list(known or [])
    if dossier.provider.dv_number not in dv_numbers:
        dv_numbers.append(dossier.provider.dv_number)
    provider.dv_numbers = dv_numbers

    row = session.get(Dossier, dossier.dossier_id)
    if row is None:
        row = Dossier(
            dossier_id=dossier.dossier_id,
            workflow_id=workflow_id,
            provider_id=dossier.provider.provider_id,
            invoice_number=dossier.invoice_number,
            step=Step.ONBOARDING.value,
            created_at=utcnow(),
        )
        session.add(row)
    for column, value in _dossier_columns(dossier).items():
        setattr(row, column, value)
    session.flush()
    return row


def save_dossier_if_changed(
    session: Session, dossier: DossierInput, workflow_id: str
) -> bool:
    """`save_dossier`, unless both rows already hold what it would write.

    The activities run this before every mail, sign link and certificate; one
    read of both rows is cheaper than loading them to find nothing to change.
    True when the rows were created or refreshed.
    """
    stored = session.execute(
        _STORED_INPUT,
        {
            "dossier_id": dossier.dossier_id,
            "provider_id": dossier.provider.provider_id,
        },
    ).one_or_none()
    if stored is not None and _holds(stored._mapping, dossier):
        return False
    save_dossier(session, dossier, workflow_id)
    return True


# What save_dossier writes of both rows, by column name, in one statement.
_STORED_INPUT = (
    select(
        Provider.dv_numbers,
        Provider.name,
        Provider.container_email,
        Dossier.kind,
        Dossier.client_name,
        Dossier.client_enterprise_number,
        Dossier.fee_excl_vat,
        Dossier.fee_vat,
        Dossier.fee_incl_vat,
        Dossier.start_date,
        Dossier.expected_subsidy,
        Dossier.warnings,
    )
    .join_from(Dossier, Provider, Provider.provider_id == Dossier.provider_id)
    .where(
        Dossier.dossier_id == bindparam("dossier_id"),
        Provider.provider_id == bindparam("provider_id"),
    )
)


def _holds(stored: RowMapping, dossier: DossierInput) -> bool:
    """True when the stored columns are what save_dossier would write.

    A column that save_dossier writes but the statement does not read fails
    loudly here (KeyError), rather than going stale.
    """
    dv_numbers = stored["dv_numbers"]
    columns = {**_provider_columns(dossier), **_dossier_columns(dossier)}
    return (
        isinstance(dv_numbers, list)
        and dossier.provider.dv_number in dv_numbers
        and all(stored[column] == value for column, value in columns.items())
    )


def _provider_columns(dossier: DossierInput) -> dict[str, Any]:
    """The provider row's columns that follow every input (DV numbers add up)."""
    return {
        "name": dossier.provider.name,
        "container_email": dossier.provider.container_email,
    }


def _dossier_columns(dossier: DossierInput) -> dict[str, Any]:
    """The dossier row's columns that follow every input; progress does not."""
    subsidy = dossier.subsidy()
    return {
        "kind": dossier.kind.value,
        "client_name": dossier.client.name,
        "client_enterprise_number": dossier.client.enterprise_number,
        "fee_excl_vat": dossier.fee.total_excl_vat,
        "fee_vat": dossier.fee.vat,
        "fee_incl_vat": dossier.fee.total_incl_vat,
        "start_date": dossier.start_date,
        "expected_subsidy": subsidy.subsidy if subsidy else None,
        "warnings": [
            {"code": w.code, "message": w.message, "rule": w.rule}
            for w in dossier.warnings
        ],
    }


def add_timeline_once(sessions: sessionmaker[Session], line: TimelineEvent) -> bool:
    """Add a timeline line once: its `source` is unique. True when added.

    A retry, a double click or a webhook delivered twice writes no second line,
    also when two of them race.
    """
    with sessions() as session:
        if session.scalar(
            select(TimelineEvent.id).where(TimelineEvent.source == line.source)
        ):
            return False
        session.add(line)
        try:
            session.commit()
        except IntegrityError:  # a concurrent writer added it first
            session.rollback()
            return False
        return True


def dossier_retention(session: Session, dossier_id: str) -> date | None:
    """The dossier's last retention day: as set at its close, else its invoice's.

    Everything archived under a dossier is kept as long as the dossier; None
    when the records know nothing archived of it.
    """
    dossier = session.get(Dossier, dossier_id)
    if dossier is not None and dossier.retain_until is not None:
        return dossier.retain_until
    recorded: date | None = session.scalar(
        select(func.max(ArchiveItem.retain_until)).where(
            ArchiveItem.dossier_id == dossier_id
        )
    )
    return recorded


def record_archived(
    session: Session,
    item: ArchivedItem,
    *,
    container: str,
    dossier_id: str,
    name: str,
    content_type: str,
) -> ArchiveItem:
    """Note an archived object in the records; a second call changes nothing."""
    row = session.get(ArchiveItem, item.key)
    if row is None:
        row = ArchiveItem(
            key=item.key,
            container=container,
            dossier_id=dossier_id,
            name=name,
            sha256=item.sha256,
            size=item.size,
            content_type=content_type,
            retain_until=item.retain_until,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
    return row
