"""The import pipeline, one function a kind: source -> mapping -> validate -> dedupe -> load -> report.

The `mdpipe` CLI and the Prefect flows both call these functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine

from mdpipe.config import DEFAULT_WORKSPACE, Limits
from mdpipe.contacts import validate_contacts
from mdpipe.db.engine import connect_or_fail, transaction
from mdpipe.db.load import batches
from mdpipe.db.merge import existing_contact_keys, insert_contacts, update_contacts
from mdpipe.db.runs import finish_run, record_progress, start_run
from mdpipe.dedupe import OnDuplicate, plan_contacts
from mdpipe.errors import MappingError, Reason, concat_errors, errors_where
from mdpipe.mapping import (
    CONTACT_FIELDS,
    ColumnMapping,
    describe_header,
    load_mapping_file,
    match_columns,
)
from mdpipe.report import RunSummary, summarise_run, write_errors_csv
from mdpipe.source import ROW, Source, read_source
from mdpipe.validate import prepare_fields
from mdpipe.workspace import ensure_workspace, find_workspace, list_properties

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total) while an import runs."""

OUTCOME_SCHEMA = {ROW: pl.Int64(), "outcome": pl.String()}


@dataclass(frozen=True)
class ImportOptions:
    """Options shared by both imports (CLI flags and flow parameters)."""

    workspace: str = DEFAULT_WORKSPACE
    mapping: Mapping[str, str | None] = field(default_factory=dict)
    mapping_file: str | None = None
    on_duplicate: OnDuplicate = "skip"
    default_region: str | None = None
    timezone: str = "UTC"
    dry_run: bool = False
    errors_out: str | None = None
    max_rows: int | None = None
    max_bytes: int | None = None
    batch_size: int = 50_000

    def column_overrides(self) -> dict[str, str | None]:
        """The mapping file's pairs, overridden by the explicit ones."""
        saved = load_mapping_file(self.mapping_file) if self.mapping_file else {}
        return {**saved, **dict(self.mapping)}


class StageTimer:
    """Seconds spent in each stage, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage `name`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


@dataclass
class Prepared:
    """What every import knows once the file is read and mapped."""

    source: Source
    engine: Engine
    workspace_id: int | None
    mapping: ColumnMapping
    headers: dict[str, str]
    fields: pl.DataFrame


def _prepare(
    path: str | Path,
    *,
    options: ImportOptions,
    database_url: str | None,
    timer: StageTimer,
    fields_for: Callable[[Connection, int | None], Mapping[str, tuple[str, ...]]],
) -> Prepared:
    with timer.stage("read"):
        source = read_source(
            path, limits=Limits.resolve(max_rows=options.max_rows, max_bytes=options.max_bytes)
        )
    engine = connect_or_fail(database_url)
    with transaction(engine) as conn:
        workspace_id = (
            find_workspace(conn, options.workspace)
            if options.dry_run
            else ensure_workspace(conn, options.workspace)
        )
        fields = fields_for(conn, workspace_id)
    with timer.stage("map"):
        mapping = match_columns(source.headers, fields=fields, overrides=options.column_overrides())
        headers = {f: describe_header(source.headers, i) for f, i in mapping.fields.items()}
        wrong_width = source.errors.select(ROW)
        cells = source.cells.join(wrong_width, on=ROW, how="anti")
        frame = prepare_fields(
            Source(**{**asdict_shallow(source), "cells": cells}), mapping, list(fields)
        )
    return Prepared(source, engine, workspace_id, mapping, headers, frame)


def asdict_shallow(source: Source) -> dict[str, Any]:
    """The dataclass's fields without copying frames."""
    return {f: getattr(source, f) for f in source.__dataclass_fields__}


def import_contacts(
    path: str | Path,
    *,
    options: ImportOptions | None = None,
    database_url: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Import a contacts CSV into the workspace; returns the run's summary.

    Raises FileRefused, MappingError or DatabaseUnavailable when nothing can be imported.
    """
    options = options or ImportOptions()
    timer = StageTimer()
    properties: dict[str, str] = {}

    def fields_for(conn: Connection, workspace_id: int | None) -> dict[str, tuple[str, ...]]:
        properties.update(list_properties(conn, workspace_id))
        return {**CONTACT_FIELDS, **{name: () for name in properties}}

    prepared = _prepare(
        path, options=options, database_url=database_url, timer=timer, fields_for=fields_for
    )
    if not {"email", "phone"} & set(prepared.mapping.fields):
        msg = (
            f"no column maps to email or phone (columns: {', '.join(prepared.source.headers)}); "
            'map one with --map "CSV header=email" or --map "CSV header=phone"'
        )
        raise MappingError(msg)
    with timer.stage("validate"):
        valid = validate_contacts(
            prepared.fields,
            properties=properties,
            headers=prepared.headers,
            default_region=options.default_region,
        )
    with timer.stage("dedupe"), transaction(prepared.engine) as conn:
        existing = existing_contact_keys(conn, prepared.workspace_id)
        plan = plan_contacts(
            valid.rows, existing, on_duplicate=options.on_duplicate, headers=prepared.headers
        )
    errors = concat_errors([prepared.source.errors, valid.errors, plan.errors])
    planned = pl.concat(
        [
            plan.new.select(ROW, pl.lit("imported").alias("outcome")),
            plan.updates.select(ROW, pl.lit("updated").alias("outcome")),
        ]
    )

    def load(conn: Connection, run_id: int, batch: pl.DataFrame) -> pl.DataFrame:
        assert prepared.workspace_id is not None
        if "contact_id" in batch.columns:
            update_contacts(conn, batch, run_id=run_id)
            return pl.DataFrame(schema={ROW: pl.Int64()})
        return insert_contacts(conn, batch, workspace_id=prepared.workspace_id, run_id=run_id)

    return _run(
        "contacts",
        prepared,
        options=options,
        timer=timer,
        work=[plan.new, plan.updates],
        load=load,
        planned=planned,
        errors=errors,
        progress=progress,
        extra={"normalised_phones": valid.normalised_phones},
    )


def _run(
    kind: str,
    prepared: Prepared,
    *,
    options: ImportOptions,
    timer: StageTimer,
    work: list[pl.DataFrame],
    load: Callable[[Connection, int, pl.DataFrame], pl.DataFrame],
    planned: pl.DataFrame,
    errors: pl.DataFrame,
    progress: Progress | None,
    extra: Mapping[str, int],
) -> RunSummary:
    """Load the planned work in batches (unless a dry run), then record and report the run."""
    source = prepared.source
    total = sum(frame.height for frame in work)
    summary_args: dict[str, Any] = {
        "kind": kind,
        "file_name": source.path.name,
        "processed": source.rows_read,
        "ignored_columns": prepared.mapping.ignored,
        "dry_run": options.dry_run,
        "extra": extra,
    }
    if options.dry_run:
        summary = summarise_run(
            **summary_args, outcomes=planned, errors=errors, run_id=None, timings=timer.seconds
        )
        _write_errors(source, errors, options)
        return summary
    assert prepared.workspace_id is not None
    run_id = start_run(
        prepared.engine,
        workspace_id=prepared.workspace_id,
        kind=kind,
        file_name=source.path.name,
        file_sha256=source.sha256,
        options={k: v for k, v in asdict(options).items() if k != "batch_size"},
        rows_total=total,
    )
    try:
        lost = _load_batches(
            prepared.engine,
            run_id,
            work,
            load=load,
            timer=timer,
            progress=progress,
            total=total,
            batch_size=options.batch_size,
        )
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        finish_run(
            prepared.engine, run_id, status=status, counts={"error": str(exc)[:2000]}, errors=None
        )
        raise
    lost_errors = errors_where(
        lost,
        pl.lit(True),
        reason=Reason.DUPLICATE_EXISTING,
        column=None,
        value=None,
        detail="created meanwhile by another import",
    )
    errors = concat_errors([errors, lost_errors])
    outcomes = planned.join(lost, on=ROW, how="anti")
    with timer.stage("report"):
        summary = summarise_run(
            **summary_args, outcomes=outcomes, errors=errors, run_id=run_id, timings=timer.seconds
        )
        finish_run(
            prepared.engine, run_id, status=summary.status, counts=summary.counts(), errors=errors
        )
        _write_errors(source, errors, options)
    return summary


def _load_batches(
    engine: Engine,
    run_id: int,
    work: list[pl.DataFrame],
    *,
    load: Callable[[Connection, int, pl.DataFrame], pl.DataFrame],
    timer: StageTimer,
    progress: Progress | None,
    total: int,
    batch_size: int,
) -> pl.DataFrame:
    done = 0
    lost = [pl.DataFrame(schema={ROW: pl.Int64()})]
    if progress:
        progress("load", 0, total)
    with timer.stage("load"):
        for frame in work:
            for batch in batches(frame, batch_size):
                with transaction(engine) as conn:
                    lost.append(load(conn, run_id, batch))
                    done += batch.height
                    record_progress(conn, run_id, done)
                if progress:
                    progress("load", done, total)
    return pl.concat(lost)


def _write_errors(source: Source, errors: pl.DataFrame, options: ImportOptions) -> None:
    if options.errors_out:
        write_errors_csv(source, errors, options.errors_out)
