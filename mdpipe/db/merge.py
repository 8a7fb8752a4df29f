"""Inserts that skip what the database already holds, and the contacts update.

New rows go straight in by COPY on PostgreSQL. The plan already removed every
duplicate it could see, so a unique-key conflict there means a concurrent
import or a stored message: then (and always on SQLite) the batch goes through
a staging table and `INSERT ... ON CONFLICT DO NOTHING`, and the rows the
database refused are returned so the run counts them as `duplicate-existing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from psycopg.errors import UniqueViolation
from sqlalchemy import Connection, text

from mdpipe.db.engine import is_postgres
from mdpipe.db.load import as_json, copy_rows, create_staging, json_merge, now_sql, read_frame

CONTACT_FIELDS = ("first_name", "last_name", "email", "email_key", "phone", "company")
NO_ROWS = pl.Schema({"row": pl.Int64()})


def insert_skipping_taken(
    conn: Connection,
    table: str,
    batch: pl.DataFrame,
    *,
    columns: Sequence[str],
    constants: Mapping[str, int],
    same_row: str,
    casts: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Insert `columns` of `batch` plus `constants` into `table`; returns the refused `row`s.

    `same_row` is SQL true when stored row `t` is staged row `s`; `casts` wraps a staged
    column in SQL (`{}` stands for it) where its text needs a type.
    """
    consts = [pl.lit(value, dtype=pl.Int64).alias(name) for name, value in constants.items()]
    if is_postgres(conn) and _copy_unless_conflict(conn, table, batch.select(*columns, *consts)):
        return pl.DataFrame(schema=NO_ROWS)
    stage = create_staging(
        conn, f"stage_{table}", [("row", "bigint"), *((c, _stage_type(batch, c)) for c in columns)]
    )
    copy_rows(conn, stage, batch.select("row", *columns))
    casts = casts or {}
    selected = [casts.get(c, "{}").format(f"s.{c}") for c in columns] + [f":{k}" for k in constants]
    # WHERE true: SQLite needs it to read ON CONFLICT as the upsert clause
    inserted = conn.execute(
        text(
            f"INSERT INTO {table} ({', '.join([*columns, *constants])}) "
            f"SELECT {', '.join(selected)} FROM {stage} s WHERE true ON CONFLICT DO NOTHING"
        ),
        dict(constants),
    ).rowcount
    if inserted == batch.height:
        return pl.DataFrame(schema=NO_ROWS)
    return read_frame(
        conn,
        f"SELECT s.row FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {table} t "
        f"WHERE t.created_run_id = :created_run_id AND {same_row})",
        dict(NO_ROWS),
        dict(constants),
    )


def _stage_type(batch: pl.DataFrame, column: str) -> str:
    return "bigint" if batch.schema[column].is_integer() else "text"


def _copy_unless_conflict(conn: Connection, table: str, frame: pl.DataFrame) -> bool:
    """COPY straight into `table`; False (and nothing written) if a unique key is taken."""
    savepoint = conn.begin_nested()
    try:
        copy_rows(conn, table, frame)
    except UniqueViolation:  # raised by psycopg's own cursor, which COPY uses
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def insert_contacts(
    conn: Connection, batch: pl.DataFrame, *, workspace_id: int, run_id: int
) -> pl.DataFrame:
    """Insert new contacts; returns the rows (`row`) a concurrent import created first."""
    return insert_skipping_taken(
        conn,
        "contacts",
        batch,
        columns=[*CONTACT_FIELDS, "properties"],
        constants={
            "workspace_id": workspace_id,
            "created_run_id": run_id,
            "updated_run_id": run_id,
        },
        same_row="t.workspace_id = :workspace_id AND (t.email_key = s.email_key OR t.phone = s.phone)",
        casts={"properties": as_json(conn, "{}")},
    )


def update_contacts(conn: Connection, batch: pl.DataFrame, *, run_id: int) -> int:
    """Overwrite matched contacts with the batch's non-empty cells; merge properties. Returns rows."""
    columns = ["contact_id", *CONTACT_FIELDS, "properties"]
    stage = create_staging(
        conn, "stage_contact_updates", [(c, _stage_type(batch, c)) for c in columns]
    )
    copy_rows(conn, stage, batch.select(columns))
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


CONTACT_KEYS = pl.Schema({"id": pl.Int64(), "email_key": pl.String(), "phone": pl.String()})
# Up to this many distinct emails and phones, a file's keys are looked up one by one in the
# unique indexes (about 0.05 s for 10,000 keys whatever the workspace's size); past it, one
# read of every key of the workspace (about 1 s a million contacts) is cheaper.
MOST_KEYS_TO_LOOK_UP = 100_000


def existing_contact_keys(
    conn: Connection, workspace_id: int | None, rows: pl.DataFrame
) -> pl.DataFrame:
    """id, email_key and phone of the workspace's contacts that may share an email or a
    phone with `rows`: those that do, or (for a large file) every contact of the workspace.
    The planner's joins pick the matches either way."""
    if workspace_id is None:
        return pl.DataFrame(schema=CONTACT_KEYS)
    keys = pl.concat([rows["email_key"], rows["phone"]]).drop_nulls().unique()
    if keys.len() > MOST_KEYS_TO_LOOK_UP:
        return read_frame(
            conn,
            "SELECT id, email_key, phone FROM contacts WHERE workspace_id = :ws",
            dict(CONTACT_KEYS),
            {"ws": workspace_id},
        )
    stage = create_staging(conn, "stage_contact_keys", [("key", "text")])
    copy_rows(conn, stage, keys.to_frame("key"))
    matches = "c.workspace_id = :ws AND (c.email_key = s.key OR c.phone = s.key)"
    # the staged keys drive the join, each an index lookup, whatever the (maybe stale)
    # statistics of a freshly loaded table say: LATERAL on PostgreSQL, CROSS JOIN on SQLite
    query = (
        f"SELECT c.id, c.email_key, c.phone FROM {stage} s CROSS JOIN LATERAL "
        f"(SELECT id, email_key, phone FROM contacts c WHERE {matches}) c"
        if is_postgres(conn)
        else f"SELECT c.id, c.email_key, c.phone FROM {stage} s CROSS JOIN contacts c WHERE {matches}"
    )
    return read_frame(conn, query, dict(CONTACT_KEYS), {"ws": workspace_id}).unique("id")


def link_participants(conn: Connection, workspace_id: int) -> int:
    """Link the workspace's conversation participants that have no contact yet to the
    contact with their phone (history imported before its contacts); returns how many."""
    return conn.execute(
        text(
            "UPDATE conversation_participants SET contact_id = (SELECT c.id FROM contacts c "
            "WHERE c.workspace_id = :ws AND c.phone = conversation_participants.phone) "
            "WHERE contact_id IS NULL "
            "AND conversation_id IN (SELECT id FROM conversations WHERE workspace_id = :ws) "
            "AND EXISTS (SELECT 1 FROM contacts c "
            "WHERE c.workspace_id = :ws AND c.phone = conversation_participants.phone)"
        ),
        {"ws": workspace_id},
    ).rowcount


def ensure_conversations(
    conn: Connection, batch: pl.DataFrame, *, workspace_id: int, run_id: int
) -> tuple[pl.DataFrame, int]:
    """Conversation ids for the batch's (channel_id, participants_key), creating the missing
    ones with their participants (linked to contacts with the same phone); returns
    (channel_id, participants_key, conversation_id) and how many were created."""
    keys = batch.select("channel_id", "participants_key").unique()
    stage = create_staging(
        conn, "stage_conversations", [("channel_id", "bigint"), ("participants_key", "text")]
    )
    copy_rows(conn, stage, keys)
    created = conn.execute(
        text(
            "INSERT INTO conversations (workspace_id, channel_id, participants_key, is_group, "
            "created_run_id) SELECT :ws, channel_id, participants_key, "
            f"participants_key LIKE '%,%', :run FROM {stage} WHERE true ON CONFLICT DO NOTHING"
        ),
        {"ws": workspace_id, "run": run_id},
    ).rowcount
    found = read_frame(
        conn,
        f"SELECT c.channel_id, c.participants_key, c.id, c.created_run_id FROM conversations c "
        f"JOIN {stage} s ON c.channel_id = s.channel_id AND c.participants_key = s.participants_key",
        {
            "channel_id": pl.Int64(),
            "participants_key": pl.String(),
            "conversation_id": pl.Int64(),
            "created_run_id": pl.Int64(),
        },
    )
    fresh = found.filter(pl.col("created_run_id") == run_id)
    if fresh.height:
        members = fresh.select(
            "conversation_id", pl.col("participants_key").str.split(",").alias("phone")
        ).explode("phone")
        people = create_staging(
            conn, "stage_participants", [("conversation_id", "bigint"), ("phone", "text")]
        )
        copy_rows(conn, people, members)
        conn.execute(
            text(
                "INSERT INTO conversation_participants (conversation_id, phone, contact_id) "
                "SELECT p.conversation_id, p.phone, (SELECT ct.id FROM contacts ct "
                "WHERE ct.workspace_id = :ws AND ct.phone = p.phone) "
                f"FROM {people} p WHERE true ON CONFLICT DO NOTHING"
            ),
            {"ws": workspace_id},
        )
    return found.drop("created_run_id"), created


def sent_at_text(conn: Connection) -> pl.Expr:
    """`sent_at` (UTC) as the text this database stores and compares for the instant."""
    text_ = pl.col("sent_at").dt.strftime("%Y-%m-%d %H:%M:%S%.6f")
    return (text_ + "+00") if is_postgres(conn) else text_


def insert_messages(
    conn: Connection,
    batch: pl.DataFrame,
    *,
    conversations: pl.DataFrame,
    workspace_id: int,
    run_id: int,
) -> pl.DataFrame:
    """Insert messages into their `conversations` (from ensure_conversations); returns refused rows."""
    rows = batch.join(
        conversations, on=["channel_id", "participants_key"], how="left"
    ).with_columns(sent_at_text(conn).alias("sent_at"))
    sent_at = "CAST({} AS timestamptz)" if is_postgres(conn) else "{}"
    return insert_skipping_taken(
        conn,
        "messages",
        rows,
        columns=["channel_id", "conversation_id", "direction", "sent_at", "text", "external_id"],
        constants={"workspace_id": workspace_id, "created_run_id": run_id},
        same_row=(
            "t.conversation_id = s.conversation_id AND t.direction = s.direction "
            f"AND t.sent_at = {sent_at.format('s.sent_at')} AND t.text = s.text"
        ),
        casts={"sent_at": sent_at},
    )
