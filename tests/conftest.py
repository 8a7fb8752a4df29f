"""Fixtures: a clean real database per test, on SQLite and on PostgreSQL.

PostgreSQL is required: when it cannot be reached the tests fail, never skip.
Each PostgreSQL test gets its own schema (via search_path), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from mdpipe.db.engine import open_engine

POSTGRES_URL = os.environ.get(
    "MDPIPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _libpq_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def postgres_available() -> None:
    try:
        psycopg.connect(_libpq_dsn(POSTGRES_URL), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required for the tests and is not reachable at {POSTGRES_URL}: {exc}"
        )


def postgres_schema_url(schema: str) -> str:
    """The test database URL with its search_path set to `schema`."""
    joiner = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mdpipe.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def postgres_url(postgres_available: None) -> Iterator[str]:
    """A URL to an empty PostgreSQL schema of its own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq_dsn(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_schema_url(schema)
    finally:
        with psycopg.connect(_libpq_dsn(POSTGRES_URL), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the clean database, schema at head."""
    engine = open_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write text (or bytes) to a .csv file in the test's folder; returns its path."""

    def write(content: str | bytes, name: str = "input.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return path

    return write
