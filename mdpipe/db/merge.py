"""Set-based merges from staging tables into the workspace's tables."""

from __future__ import annotations

import polars as pl
from psycopg.errors import UniqueViolation
from sqlalchemy import Connection, text

from mdpipe.db.engine import is_postgres
from mdpipe.db.load import as_json, copy_rows, create_staging, json_merge, now_sql, read_frame

CONTACT_FIELDS = ("first_name", "last_name", "email", "email_key", "phone", "company")
_CONTACT_STAGE = [("row", "bigint"), *((f, "text") for f in CONTACT_FIELDS), ("properties", "text")]


def insert_contacts(
    conn: Connection, batch: pl.DataFrame, *, workspace_id: int, run_id: int
) -> pl.DataFrame:
    """Insert new contacts; returns the rows (`row`) a concurrent import created first."""
    if is_postgres(conn) and _copy_unless_conflict(
        conn,
        "contacts",
        batch.select(*CONTACT_FIELDS, "properties").with_columns(
            pl.lit(workspace_id, dtype=pl.Int64).alias("workspace_id"),
            pl.lit(run_id, dtype=pl.Int64).alias("created_run_id"),
            pl.lit(run_id, dtype=pl.Int64).alias("updated_run_id"),
        ),
    ):
        return pl.DataFrame(schema={"row": pl.Int64()})
    stage = create_staging(conn, "stage_contacts", _CONTACT_STAGE)
    copy_rows(conn, stage, batch.select(name for name, _ in _CONTACT_STAGE))
    fields = ", ".join(CONTACT_FIELDS)
    # WHERE true: SQLite needs it to read ON CONFLICT as the upsert clause
    inserted = conn.execute(
        text(
            f"INSERT INTO contacts (workspace_id, {fields}, properties, created_run_id, updated_run_id) "
            f"SELECT :ws, {fields}, {as_json(conn, 'properties')}, :run, :run FROM {stage} "
            "WHERE true ON CONFLICT DO NOTHING"
        ),
        {"ws": workspace_id, "run": run_id},
    ).rowcount
    if inserted == batch.height:
        return pl.DataFrame(schema={"row": pl.Int64()})
    return read_frame(
        conn,
        f"SELECT s.row FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM contacts c "
        "WHERE c.workspace_id = :ws AND c.created_run_id = :run "
        "AND (c.email_key = s.email_key OR c.phone = s.phone))",
        {"row": pl.Int64()},
        {"ws": workspace_id, "run": run_id},
    )


def _copy_unless_conflict(conn: Connection, table: str, frame: pl.DataFrame) -> bool:
    """COPY straight into `table`; False (and nothing written) if a unique key was taken meanwhile.

    The plan already removed every known duplicate, so a conflict means a concurrent import:
    then the caller takes the slower staging path, which skips the taken keys row by row.
    """
    savepoint = conn.begin_nested()
    try:
        copy_rows(conn, table, frame)
    except UniqueViolation:  # raised by psycopg's own cursor, which COPY uses
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def update_contacts(conn: Connection, batch: pl.DataFrame, *, run_id: int) -> int:
    """Overwrite matched contacts with the batch's non-empty cells; merge properties. Returns rows."""
    stage = create_staging(
        conn, "stage_contact_updates", [("contact_id", "bigint"), *_CONTACT_STAGE]
    )
    copy_rows(conn, stage, batch.select("contact_id", *(name for name, _ in _CONTACT_STAGE)))
    assignments = ", ".join(f"{f} = COALESCE(s.{f}, contacts.{f})" for f in CONTACT_FIELDS)
    merged = json_merge(conn, "contacts.properties", "s.properties")
    return conn.execute(
        text(
            f"UPDATE contacts SET {assignments}, properties = {merged}, "
            f"updated_run_id = :run, updated_at = {now_sql(conn)} "
            f"FROM {stage} s WHERE contacts.id = s.contact_id"
        ),
        {"run": run_id},
    ).rowcount


def existing_contact_keys(conn: Connection, workspace_id: int | None) -> pl.DataFrame:
    """id, email_key and phone of every contact of the workspace."""
    return read_frame(
        conn,
        "SELECT id, email_key, phone FROM contacts WHERE workspace_id = :ws",
        {"id": pl.Int64(), "email_key": pl.String(), "phone": pl.String()},
        {"ws": workspace_id if workspace_id is not None else -1},
    )
