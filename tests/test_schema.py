"""The database schema: Alembic's migrations match the table declarations; upgrades are idempotent."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mdpipe.db.engine import transaction, upgrade_schema
from mdpipe.db.tables import for_dialect, metadata
from tests.helpers import query


def test_migrations_create_exactly_the_declared_tables(engine):
    with transaction(engine) as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": for_dialect(conn.dialect.name)}
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_upgrading_twice_changes_nothing(engine):
    head = upgrade_schema(engine)
    assert upgrade_schema(engine) == head
    assert query(engine, "SELECT version_num FROM alembic_version") == [(head,)]


def test_the_database_itself_refuses_a_second_contact_with_the_same_email(engine):
    import pytest
    from sqlalchemy.exc import IntegrityError

    query(engine, "INSERT INTO workspaces (name) VALUES ('w')")
    insert = (
        "INSERT INTO contacts (workspace_id, email, email_key, properties) "
        "SELECT id, :e, lower(:e), '{}' FROM workspaces WHERE name = 'w'"
    )
    query(engine, insert, e="Ann@example.com")
    with pytest.raises(IntegrityError):
        query(engine, insert, e="ann@EXAMPLE.com")
