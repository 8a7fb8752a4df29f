"""The workspace database, declared once with SQLAlchemy Core; Alembic versions it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")
Document = JSON().with_variant(JSONB(), "postgresql")


def _id() -> Column:
    return Column("id", Id, primary_key=True, autoincrement=True)


def _ref(name: str, table: str, *, nullable: bool = False) -> Column:
    on_delete = "SET NULL" if nullable else "CASCADE"
    return Column(name, Id, ForeignKey(f"{table}.id", ondelete=on_delete), nullable=nullable)


def _plain_ref(name: str, *, nullable: bool = False) -> Column:
    """A reference without a FOREIGN KEY, for the bulk tables (contacts, messages, row errors):
    PostgreSQL checks a foreign key with a trigger per row, which doubled COPY time here
    (benchmarks/imports.py; 1M row errors: 6.2 s with the key, 2.6 s without). mdpipe is their only writer and never deletes what they point to."""
    return Column(name, Id, nullable=nullable)


def _created_at() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


workspaces = Table(
    "workspaces",
    metadata,
    _id(),
    Column("name", String(200), nullable=False, unique=True),
    _created_at(),
)

import_runs = Table(
    "import_runs",
    metadata,
    _id(),
    _ref("workspace_id", "workspaces"),
    Column("kind", String(20), nullable=False),
    Column("file_name", Text, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("options", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("dry_run", Boolean, nullable=False, server_default="0"),
    Column("rows_total", Integer, nullable=False, server_default="0"),
    Column("rows_done", Integer, nullable=False, server_default="0"),
    Column("processed", Integer, nullable=False, server_default="0"),
    Column("imported", Integer, nullable=False, server_default="0"),
    Column("updated", Integer, nullable=False, server_default="0"),
    Column("skipped", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("normalised_phones", Integer, nullable=False, server_default="0"),
    Column("conversations_created", Integer, nullable=False, server_default="0"),
    Column("dropped_attachments", Integer, nullable=False, server_default="0"),
    Column("ignored_columns", JSON, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("timings", JSON, nullable=False),
    Column("error", Text),
    # who asked for the run, e.g. "prefect-flow-run:<id>", so an orchestrator can close it
    Column("requested_by", Text),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('contacts', 'messages')", name="kind"),
    Index(None, "workspace_id", "kind", "file_sha256"),
    Index(None, "requested_by"),
)

row_errors = Table(
    "row_errors",
    metadata,
    _id(),
    _plain_ref("run_id"),  # a bulk table too: a re-run of 1M rows writes 1M errors
    Column("row", Integer, nullable=False),
    Column("column", Text),
    Column("value", Text),
    Column("reason", String(40), nullable=False),
    Column("detail", Text),
    Index(None, "run_id", "row"),
)

property_definitions = Table(
    "property_definitions",
    metadata,
    _id(),
    _ref("workspace_id", "workspaces"),
    Column("name", String(100), nullable=False),
    Column("type", String(10), nullable=False),
    _created_at(),
    UniqueConstraint("workspace_id", "name"),
    CheckConstraint("type IN ('text', 'number', 'boolean', 'date')", name="type"),
)

contacts = Table(
    "contacts",
    metadata,
    _id(),
    _plain_ref("workspace_id"),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("email", Text),
    # the lower-cased email: with the unique key below, the database keeps emails unique
    # case-insensitively, whatever the code does
    Column("email_key", Text),
    Column("phone", Text),
    Column("company", Text),
    Column("properties", Document, nullable=False),
    _plain_ref("created_run_id", nullable=True),
    _plain_ref("updated_run_id", nullable=True),
    _created_at(),
    Column("updated_at", DateTime(timezone=True)),
    UniqueConstraint("workspace_id", "email_key"),
    UniqueConstraint("workspace_id", "phone"),
    CheckConstraint("email IS NOT NULL OR phone IS NOT NULL", name="contact_method"),
)

channels = Table(
    "channels",
    metadata,
    _id(),
    _ref("workspace_id", "workspaces"),
    Column("name", String(200), nullable=False),
    Column("phone", String(20), nullable=False),
    _created_at(),
    UniqueConstraint("workspace_id", "name"),
    UniqueConstraint("workspace_id", "phone"),
)

conversations = Table(
    "conversations",
    metadata,
    _id(),
    _ref("workspace_id", "workspaces"),
    _ref("channel_id", "channels"),
    # the participants' E.164 numbers, sorted and comma-joined: one conversation per set
    Column("participants_key", Text, nullable=False),
    Column("is_group", Boolean, nullable=False),
    _ref("created_run_id", "import_runs", nullable=True),
    _created_at(),
    UniqueConstraint("channel_id", "participants_key"),
)

conversation_participants = Table(
    "conversation_participants",
    metadata,
    _ref("conversation_id", "conversations"),
    Column("phone", String(20), nullable=False),
    Column("contact_id", Id),
    PrimaryKeyConstraint("conversation_id", "phone"),
    Index(None, "phone"),
)

messages = Table(
    "messages",
    metadata,
    _id(),
    _plain_ref("workspace_id"),
    _plain_ref("channel_id"),
    _plain_ref("conversation_id"),
    Column("direction", String(8), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("text", Text, nullable=False),
    Column("external_id", Text),
    _plain_ref("created_run_id", nullable=True),
    _created_at(),
    UniqueConstraint("channel_id", "external_id"),
    CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
)

# One message per conversation, direction, instant and text. PostgreSQL indexes md5(text):
# a B-tree entry holds at most ~2.7 kB and a long text must not fail the import.
Index(
    "uq_messages_identity_md5",
    messages.c.conversation_id,
    messages.c.direction,
    messages.c.sent_at,
    func.md5(messages.c.text),
    unique=True,
).ddl_if(dialect="postgresql")
Index(
    "uq_messages_identity",
    messages.c.conversation_id,
    messages.c.direction,
    messages.c.sent_at,
    messages.c.text,
    unique=True,
).ddl_if(dialect="sqlite")


def for_dialect(dialect: str) -> Callable[..., bool]:
    """An Alembic `include_object` hook that leaves out indexes meant for another dialect."""

    def include(obj: object, name: str, type_: str, reflected: bool, compare_to: object) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect is None or only.dialect == dialect

    return include
