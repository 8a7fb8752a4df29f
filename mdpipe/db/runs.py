"""Import run records: created when a run starts, updated as batches commit, closed at the end."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl
from sqlalchemy import Connection, func, insert, select, text, update

from mdpipe.db.load import copy_rows, now_sql, read_frame
from mdpipe.db.tables import import_runs


def start_run(
    conn: Connection,
    *,
    workspace_id: int,
    kind: str,
    file_name: str,
    file_sha256: str,
    options: Mapping[str, Any],
    rows_total: int,
    requested_by: str | None = None,
) -> int:
    """A new run record in status `running`; returns its id."""
    return conn.execute(
        insert(import_runs)
        .values(
            workspace_id=workspace_id,
            kind=kind,
            file_name=file_name,
            file_sha256=file_sha256,
            options=json.loads(json.dumps(dict(options), default=str)),
            status="running",
            rows_total=rows_total,
            requested_by=requested_by,
            ignored_columns=[],
            reasons={},
            timings={},
        )
        .returning(import_runs.c.id)
    ).scalar_one()


def record_progress(conn: Connection, run_id: int, rows_done: int) -> None:
    """Rows done so far, written in the batch's own transaction."""
    conn.execute(update(import_runs).where(import_runs.c.id == run_id).values(rows_done=rows_done))


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    status: str,
    counts: Mapping[str, Any],
    errors: pl.DataFrame | None,
) -> None:
    """Close the run with its status, counts and row errors."""
    conn.execute(
        text(f"UPDATE import_runs SET finished_at = {now_sql(conn)} WHERE id = :id"), {"id": run_id}
    )
    conn.execute(
        update(import_runs).where(import_runs.c.id == run_id).values(status=status, **counts)
    )
    if errors is not None and errors.height:
        copy_rows(
            conn, "row_errors", errors.with_columns(pl.lit(run_id, dtype=pl.Int64).alias("run_id"))
        )


RUN_COLUMNS = (
    "id",
    "kind",
    "file_name",
    "status",
    "processed",
    "imported",
    "updated",
    "skipped",
    "failed",
    "rows_done",
    "rows_total",
    "started_at",
    "finished_at",
)


def list_runs(conn: Connection, workspace_id: int | None) -> list[dict[str, Any]]:
    """The workspace's runs, newest first."""
    if workspace_id is None:
        return []
    rows = conn.execute(
        select(*(import_runs.c[c] for c in RUN_COLUMNS))
        .where(import_runs.c.workspace_id == workspace_id)
        .order_by(import_runs.c.id.desc())
    ).mappings()
    return [dict(r) for r in rows]


def get_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    """One run record, all columns."""
    row = conn.execute(select(import_runs).where(import_runs.c.id == run_id)).mappings().first()
    return dict(row) if row else None


def run_errors(conn: Connection, run_id: int) -> pl.DataFrame:
    """The row errors of a run, by row."""
    return read_frame(
        conn,
        'SELECT "row", "column", value, reason, detail FROM row_errors WHERE run_id = :id ORDER BY "row", id',
        {
            "row": pl.Int64(),
            "column": pl.String(),
            "value": pl.String(),
            "reason": pl.String(),
            "detail": pl.String(),
        },
        {"id": run_id},
    )


def completed_runs_of(conn: Connection, workspace_id: int, kind: str, sha256: str) -> int:
    """How many completed runs imported a file with this sha256 (dry runs leave no record)."""
    return conn.execute(
        select(func.count()).where(
            import_runs.c.workspace_id == workspace_id,
            import_runs.c.kind == kind,
            import_runs.c.file_sha256 == sha256,
            import_runs.c.status == "completed",
        )
    ).scalar_one()


def close_runs_requested_by(conn: Connection, requested_by: str, *, status: str, error: str) -> int:
    """Mark the still-running runs `requested_by` asked for (a killed orchestrator run); returns how many."""
    return conn.execute(
        update(import_runs)
        .where(import_runs.c.requested_by == requested_by, import_runs.c.status == "running")
        .values(status=status, error=error)
    ).rowcount
