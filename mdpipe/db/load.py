"""Bulk paths in and out of the database: COPY on PostgreSQL, batched statements on SQLite.

A load goes through a temporary staging table, then one set-based statement
merges it, so a batch is one transaction: it commits whole or not at all.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy import BigInteger, Column, Connection, MetaData, Table, Text, text

from mdpipe.db.engine import is_postgres

Schema = dict[str, pl.DataType]


def copy_rows(conn: Connection, table: str, frame: pl.DataFrame) -> None:
    """Append `frame` to `table` (same column names): COPY on PostgreSQL, executemany on SQLite."""
    if frame.height == 0:
        return
    columns = ", ".join(_quote(conn, c) for c in frame.columns)
    if is_postgres(conn):
        payload = frame.write_csv(include_header=False, null_value="", quote_style="non_numeric")
        cursor = _driver_cursor(conn)
        with cursor.copy(
            f"COPY {_quote(conn, table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            copy.write(payload)
        return
    marks = ", ".join("?" for _ in frame.columns)
    conn.exec_driver_sql(
        f"INSERT INTO {_quote(conn, table)} ({columns}) VALUES ({marks})",
        frame.with_columns(pl.col(pl.Date).cast(pl.String)).rows(),
    )


def read_frame(
    conn: Connection, query: str, schema: Schema, params: dict[str, object] | None = None
) -> pl.DataFrame:
    """The rows of `query` as a frame: COPY TO STDOUT on PostgreSQL, a cursor on SQLite."""
    used = {k: v for k, v in (params or {}).items() if re.search(rf":{k}\b", query)}
    if is_postgres(conn):
        bound = text(query).bindparams(**used).compile(conn, compile_kwargs={"literal_binds": True})
        cursor = _driver_cursor(conn)
        buffer = io.BytesIO()
        with cursor.copy(f"COPY ({bound}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buffer.write(block)
        if buffer.tell() == 0:
            return pl.DataFrame(schema=schema)
        buffer.seek(0)
        return pl.read_csv(
            buffer, has_header=False, schema=schema, empty_string_is_null=True, infer_schema=False
        )
    rows = conn.execute(text(query), used).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def create_staging(conn: Connection, name: str, columns: Sequence[tuple[str, str]]) -> str:
    """A temporary table (dropped at commit on PostgreSQL) with text or bigint columns."""
    meta = MetaData()
    types = {"text": Text, "bigint": BigInteger}
    table = Table(
        name,
        meta,
        *(Column(col, types[kind]()) for col, kind in columns),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    if not is_postgres(conn):
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
    table.create(conn)
    return name


def json_merge(conn: Connection, stored: str, incoming: str) -> str:
    """SQL for `stored` JSON object overlaid with `incoming` (absent keys keep their values)."""
    if is_postgres(conn):
        return f"{stored} || CAST({incoming} AS jsonb)"
    return f"json_patch({stored}, {incoming})"


def as_json(conn: Connection, expression: str) -> str:
    """SQL casting a JSON text `expression` to the dialect's JSON column type."""
    return f"CAST({expression} AS jsonb)" if is_postgres(conn) else expression


def now_sql(conn: Connection) -> str:
    """SQL for the current instant."""
    return "now()" if is_postgres(conn) else "CURRENT_TIMESTAMP"


def batches(frame: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    """`frame` in slices of at most `size` rows."""
    return (
        [frame.slice(offset, size) for offset in range(0, frame.height, size)]
        if frame.height
        else []
    )


def _driver_cursor(conn: Connection) -> Any:
    """psycopg's own cursor on the connection's transaction (for COPY)."""
    driver = conn.connection.dbapi_connection
    assert driver is not None
    return driver.cursor()


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
