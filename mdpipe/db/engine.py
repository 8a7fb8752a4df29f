"""Engines for SQLite and PostgreSQL, and the schema kept at Alembic's head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from mdpipe.config import database_url
from mdpipe.errors import DatabaseUnavailable

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_SCHEMA_LOCK = 7_363_734  # pg_advisory_xact_lock key: one migrator at a time


def is_postgres(engine: Engine | Connection) -> bool:
    """Whether the engine speaks PostgreSQL."""
    return engine.dialect.name == "postgresql"


def open_engine(url: str | None = None, *, upgrade: bool = True) -> Engine:
    """An engine for `url` (or the configured one) whose schema is at the latest version."""
    raw_url = database_url(url)
    try:
        parsed = make_url(raw_url)
        engine = create_engine(parsed, **_engine_options(parsed.get_backend_name()))
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        msg = f"invalid database URL: {exc}"
        raise DatabaseUnavailable(msg) from None
    if engine.dialect.name == "sqlite":
        _use_real_sqlite_transactions(engine)
    if upgrade:
        upgrade_schema(engine)
    return engine


def describe_url(engine: Engine) -> str:
    """The engine's URL without its password."""
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction; connection failures become DatabaseUnavailable."""
    try:
        with engine.begin() as conn:
            yield conn
    except DBAPIError as exc:
        if exc.connection_invalidated or _is_connection_error(exc):
            msg = f"database {describe_url(engine)} is unreachable: {_first_line(exc.orig)}"
            raise DatabaseUnavailable(msg) from exc
        raise
    except psycopg.OperationalError as exc:  # from psycopg's own cursor (COPY)
        msg = f"database {describe_url(engine)} is unreachable: {_first_line(exc)}"
        raise DatabaseUnavailable(msg) from exc


def upgrade_schema(engine: Engine) -> str:
    """Bring the schema to Alembic's head; returns the head revision."""
    config = _alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with transaction(engine) as conn:
        if is_postgres(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    assert head is not None
    return head


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _engine_options(backend: str) -> dict[str, object]:
    if backend == "sqlite":
        return {"connect_args": {"timeout": 60}}
    if backend == "postgresql":
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}


def _use_real_sqlite_transactions(engine: Engine) -> None:
    # Python 3.11's sqlite3 issues no BEGIN before DDL and mishandles SAVEPOINT;
    # SQLAlchemy's documented recipe: autocommit at the driver, BEGIN from us.
    # IMMEDIATE takes the write lock up front, so two writers queue instead of deadlocking.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _is_connection_error(exc: DBAPIError) -> bool:
    text_ = str(exc.orig).lower()
    return any(
        needle in text_
        for needle in (
            "connection",
            "could not connect",
            "unable to open database",
            "server closed",
        )
    )


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0] if exc and str(exc).strip() else type(exc).__name__


def connect_or_fail(url: str | None = None) -> Engine:
    """open_engine, with any failure to reach or set up the database as DatabaseUnavailable."""
    try:
        return open_engine(url)
    except DatabaseUnavailable:
        raise
    except DBAPIError as exc:
        msg = f"database {make_url(database_url(url)).render_as_string(hide_password=True)} is unreachable: {_first_line(exc.orig)}"
        raise DatabaseUnavailable(msg) from None
