"""Small helpers shared by the integration tests."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import Engine, text

from mdpipe.db.engine import transaction
from mdpipe.db.runs import run_errors


def query(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of `sql` as tuples."""
    with transaction(engine) as conn:
        result = conn.execute(text(sql), params)
        return [tuple(r) for r in result.all()] if result.returns_rows else []


def error_tuples(errors: pl.DataFrame) -> list[tuple[int, str | None, str]]:
    """(row, column, reason) of an error frame, sorted."""
    return sorted(
        errors.select("row", "column", "reason").iter_rows(), key=lambda t: (t[0], t[2], t[1] or "")
    )


def stored_errors(engine: Engine, run_id: int) -> list[tuple[int, str | None, str]]:
    """(row, column, reason) of a run's stored row errors."""
    with transaction(engine) as conn:
        return error_tuples(run_errors(conn, run_id))
