"""The import pipeline, one function a kind: source -> mapping -> validate -> dedupe -> load -> report.

The `mdpipe` CLI and the Prefect flows both call `import_contacts` and `import_messages`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, Engine

from mdpipe.config import DEFAULT_WORKSPACE, Limits
from mdpipe.contacts import validate_contacts
from mdpipe.db.engine import connect_or_fail, transaction
from mdpipe.db.load import batches
from mdpipe.db.merge import (
    ensure_conversations,
    existing_contact_keys,
    insert_contacts,
    insert_messages,
    link_participants,
    update_contacts,
)
from mdpipe.db.runs import finish_run, record_progress, start_run
from mdpipe.dedupe import OnDuplicate, plan_contacts, plan_messages
from mdpipe.errors import MappingError, Reason, SetupError, concat_errors, errors_where
from mdpipe.mapping import (
    CONTACT_FIELDS,
    MESSAGE_FIELDS,
    ColumnMapping,
    describe_header,
    load_mapping_file,
    match_columns,
)
from mdpipe.messages import (
    check_default_channel,
    check_message_mapping,
    check_timestamp_format,
    check_timezone,
    validate_messages,
)
from mdpipe.report import RunSummary, summarise_run, write_errors_csv
from mdpipe.source import ROW, Source, check_source, local_copy, read_cells
from mdpipe.validate import check_region, prepare_fields
from mdpipe.workspace import ensure_workspace, find_workspace, list_channels, list_properties

logger = logging.getLogger("mdpipe")

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total) while an import runs."""


@dataclass(frozen=True)
class ImportOptions:
    """Options of both imports (CLI flags and flow parameters)."""

    workspace: str = DEFAULT_WORKSPACE
    mapping: Mapping[str, str | None] = field(default_factory=dict)
    mapping_file: str | None = None
    on_duplicate: OnDuplicate = "skip"
    default_region: str | None = None
    timezone: str = "UTC"
    channel: str | None = None
    timestamp_format: str | None = None
    dry_run: bool = False
    errors_out: str | None = None
    max_rows: int | None = None
    max_bytes: int | None = None
    batch_size: int = 50_000
    requested_by: str | None = None

    def column_overrides(self) -> dict[str, str | None]:
        """The mapping file's pairs, overridden by the explicit ones."""
        saved = load_mapping_file(self.mapping_file) if self.mapping_file else {}
        return {**saved, **dict(self.mapping)}


class StageTimer:
    """Seconds spent in each stage, in order; each stage is logged with the counts it notes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, int]]:
        """Time the block as stage `name`; the block may note counts in the dict it gets."""
        started = time.perf_counter()
        counts: dict[str, int] = {}
        try:
            yield counts
        finally:
            seconds = time.perf_counter() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            noted = ", ".join(f"{k} {v:,}" for k, v in counts.items())
            logger.info("stage %s: %.2f s%s", name, seconds, f" ({noted})" if noted else "")


@dataclass(frozen=True)
class Prepared:
    """A file read and mapped: what every import knows before validating.

    The file's cells stay in `source` only when the error CSV will need them; the fields
    frame is handed over once (`take_fields`), so neither outlives validation otherwise."""

    source: Source
    engine: Engine
    workspace_id: int | None
    mapping: ColumnMapping
    headers: dict[str, str]
    _fields: list[pl.DataFrame]

    def take_fields(self) -> pl.DataFrame:
        """`row` plus one text column per field, of the rows of the header's width (once)."""
        return self._fields.pop()


@dataclass(frozen=True)
class Work:
    """Valid rows to load, each frame with the outcome its rows get, plus the rows' errors."""

    frames: list[tuple[str, pl.DataFrame]]
    errors: pl.DataFrame
    extra: dict[str, int]
    preview: pl.DataFrame
    """The first rows to load, as they would be stored (`row`, `outcome`, fields)."""


PREVIEW_ROWS = 5


def preview_rows(frames: list[tuple[str, pl.DataFrame]], columns: list[pl.Expr]) -> pl.DataFrame:
    """The first rows of the file among `frames`, with their outcome and `columns`."""
    firsts = [
        frame.bottom_k(PREVIEW_ROWS, by=ROW).select(ROW, pl.lit(outcome).alias("outcome"), *columns)
        for outcome, frame in frames
    ]
    return pl.concat(firsts).sort(ROW).head(PREVIEW_ROWS)


@dataclass(frozen=True)
class BatchResult:
    """What loading one batch did: the rows the database refused, and counters to add up."""

    refused: pl.DataFrame
    counters: dict[str, int] = field(default_factory=dict)


Loader = Callable[[Connection, int, int, pl.DataFrame], BatchResult]
"""load(conn, workspace_id, run_id, batch) inside the batch's transaction."""

Finisher = Callable[[Connection, int], None]
"""finish(conn, workspace_id) once every batch is in, in the transaction closing the run."""


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
        return {**CONTACT_FIELDS, **dict.fromkeys(properties, ())}

    prepared = _prepare(
        path, options=options, database_url=database_url, timer=timer, fields_for=fields_for
    )
    if not {"email", "phone"} & set(prepared.mapping.fields):
        msg = (
            f"no column maps to email or phone (columns: {', '.join(prepared.source.headers)}); "
            'map one with --map "CSV header=email" or --map "CSV header=phone"'
        )
        raise MappingError(msg)
    work = _contacts_work(prepared, properties=properties, options=options, timer=timer)

    def load(conn: Connection, workspace_id: int, run_id: int, batch: pl.DataFrame) -> BatchResult:
        if "contact_id" in batch.columns:
            update_contacts(conn, batch, run_id=run_id)
            return BatchResult(refused=batch.clear().select(ROW))
        return BatchResult(insert_contacts(conn, batch, workspace_id=workspace_id, run_id=run_id))

    def link_conversations(conn: Connection, workspace_id: int) -> None:
        linked = link_participants(conn, workspace_id)
        if linked:
            logger.info("linked %d conversation participant(s) to their contacts", linked)

    return _execute(
        "contacts",
        prepared,
        work,
        load=load,
        finish=link_conversations,
        options=options,
        timer=timer,
        progress=progress,
    )


def _contacts_work(
    prepared: Prepared, *, properties: Mapping[str, str], options: ImportOptions, timer: StageTimer
) -> Work:
    """Validate and plan the contacts; the intermediate frames are freed on return."""
    with timer.stage("validate") as noted:
        valid = validate_contacts(
            prepared.take_fields(),
            properties=properties,
            headers=prepared.headers,
            default_region=options.default_region,
        )
        noted.update(valid=valid.rows.height, failed=valid.errors["row"].n_unique())
    with timer.stage("dedupe") as noted, transaction(prepared.engine) as conn:
        existing = existing_contact_keys(conn, prepared.workspace_id, valid.rows)
        plan = plan_contacts(
            valid.rows, existing, on_duplicate=options.on_duplicate, headers=prepared.headers
        )
        noted.update(existing=existing.height, new=plan.new.height, updates=plan.updates.height)
    # updates first: one may free a phone or email that a new row of the file takes
    frames = [("updated", plan.updates), ("imported", plan.new)]
    return Work(
        frames=frames,
        errors=concat_errors([valid.errors, plan.errors]),
        extra={"normalised_phones": valid.normalised_phones},
        preview=preview_rows(
            frames,
            [
                pl.col(c)
                for c in ("first_name", "last_name", "email", "phone", "company", "properties")
            ],
        ),
    )


def import_messages(
    path: str | Path,
    *,
    options: ImportOptions | None = None,
    database_url: str | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Import a message-history CSV into the workspace's conversations; returns the summary.

    Raises FileRefused, MappingError, SetupError or DatabaseUnavailable when nothing can be imported.
    """
    options = options or ImportOptions()
    check_timezone(options.timezone)
    if options.timestamp_format:
        check_timestamp_format(options.timestamp_format)
    timer = StageTimer()
    prepared = _prepare(
        path,
        options=options,
        database_url=database_url,
        timer=timer,
        fields_for=lambda conn, workspace_id: MESSAGE_FIELDS,
        untrimmed=("text",),
    )
    check_message_mapping(prepared.mapping.fields, default_channel=options.channel)
    with transaction(prepared.engine) as conn:
        channels = list_channels(conn, prepared.workspace_id)
    if not channels.height:  # every row would fail with unknown-channel
        msg = (
            f"workspace {options.workspace!r} has no channels, and messages are only imported "
            "into existing ones: add the line(s) they were sent on first, with "
            "`mdpipe channels add NAME --phone +E164`"
        )
        raise SetupError(msg)
    if options.channel:
        check_default_channel(options.channel, channels)
    work = _messages_work(prepared, channels=channels, options=options, timer=timer)
    new = work.frames[0][1]
    conversations: list[pl.DataFrame] = []

    def load(conn: Connection, workspace_id: int, run_id: int, batch: pl.DataFrame) -> BatchResult:
        created = 0
        if not conversations:  # all of the file's conversations at once, in the first batch
            found, created = ensure_conversations(
                conn, new, workspace_id=workspace_id, run_id=run_id
            )
            conversations.append(found)
        refused = insert_messages(
            conn, batch, conversations=conversations[0], workspace_id=workspace_id, run_id=run_id
        )
        return BatchResult(refused, {"conversations_created": created})

    return _execute(
        "messages", prepared, work, load=load, options=options, timer=timer, progress=progress
    )


def _messages_work(
    prepared: Prepared, *, channels: pl.DataFrame, options: ImportOptions, timer: StageTimer
) -> Work:
    """Validate the messages and drop the file's repeats; the intermediate frames are freed
    on return."""
    with timer.stage("validate") as noted:
        valid = validate_messages(
            prepared.take_fields(),
            mapped=prepared.mapping.fields,
            channels=channels,
            headers=prepared.headers,
            timezone=options.timezone,
            default_region=options.default_region,
            default_channel=options.channel,
            timestamp_format=options.timestamp_format,
        )
        noted.update(valid=valid.rows.height, failed=valid.errors["row"].n_unique())
    with timer.stage("dedupe") as noted:
        plan = plan_messages(valid.rows, headers=prepared.headers)
        noted.update(new=plan.new.height, repeated=plan.errors.height)
    channel_names = dict(zip(channels["id"], channels["name"], strict=True))
    return Work(
        frames=[("imported", plan.new)],
        errors=concat_errors([valid.errors, plan.errors]),
        extra={"dropped_attachments": valid.dropped_attachments, "conversations_created": 0},
        preview=preview_rows(
            [("imported", plan.new)],
            [
                pl.col("sent_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                pl.col("direction"),
                pl.col("channel_id").replace_strict(channel_names, default=None).alias("channel"),
                pl.col("participants_key").alias("participants"),
                pl.col("text"),
            ],
        ),
    )


def _prepare(
    path: str | Path,
    *,
    options: ImportOptions,
    database_url: str | None,
    timer: StageTimer,
    fields_for: Callable[[Connection, int | None], Mapping[str, tuple[str, ...]]],
    untrimmed: tuple[str, ...] = (),
) -> Prepared:
    check_region(options.default_region)
    overrides = options.column_overrides()
    limits = Limits.resolve(max_rows=options.max_rows, max_bytes=options.max_bytes)
    with timer.stage("read") as noted, local_copy(path, limits=limits) as local:
        checked = check_source(local, limits=limits)  # a refused file touches no database
        engine = connect_or_fail(database_url)
        with transaction(engine) as conn:
            workspace_id = find_workspace(conn, options.workspace)
            fields = fields_for(conn, workspace_id)
        mapping = match_columns(checked.headers, fields=fields, overrides=overrides)
        # whole rows when the error CSV will show them; else only the mapped columns are parsed
        source = read_cells(
            checked, columns=None if options.errors_out else mapping.fields.values()
        )
        noted.update(rows=source.rows_read, wrong_width=source.errors.height)
    with timer.stage("map") as noted:
        headers = {f: describe_header(source.headers, i) for f, i in mapping.fields.items()}
        # rows of the wrong width are failed already; their cells are not where the header says
        cells = (
            source.cells.join(source.errors.select(ROW), on=ROW, how="anti")
            if source.errors.height
            else source.cells  # no copy of the whole file in the usual case
        )
        frame = prepare_fields(
            replace(source, cells=cells), mapping, list(fields), untrimmed=untrimmed
        )
        del cells
        if not options.errors_out:  # nothing else reads the cells: free them
            source = replace(source, cells=source.cells.select(ROW))
        noted.update(mapped=len(mapping.fields), ignored=len(mapping.ignored))
    return Prepared(source, engine, workspace_id, mapping, headers, [frame])


class _Scope:
    """Where batches run: each in its own committed transaction, or (a dry run) all inside one
    transaction that is rolled back at the end, so a dry run does everything but write."""

    def __init__(self, engine: Engine, outer: Connection | None) -> None:
        self.engine = engine
        self.outer = outer

    @contextmanager
    def batch(self) -> Iterator[Connection]:
        """A transaction for one batch (a savepoint of the outer one in a dry run)."""
        if self.outer is None:
            with transaction(self.engine) as conn:
                yield conn
        else:
            with self.outer.begin_nested():
                yield self.outer


@contextmanager
def _scope(engine: Engine, *, dry_run: bool) -> Iterator[_Scope]:
    if not dry_run:
        yield _Scope(engine, None)
        return
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield _Scope(engine, conn)
        finally:
            outer.rollback()


def _execute(
    kind: str,
    prepared: Prepared,
    work: Work,
    *,
    load: Loader,
    finish: Finisher | None = None,
    options: ImportOptions,
    timer: StageTimer,
    progress: Progress | None,
) -> RunSummary:
    """Load the work in batches, then record the run and report it."""
    source = prepared.source
    total = sum(frame.height for _, frame in work.frames)
    with _scope(prepared.engine, dry_run=options.dry_run) as scope:
        with scope.batch() as conn:
            workspace_id = ensure_workspace(conn, options.workspace)
            run_id = start_run(
                conn,
                workspace_id=workspace_id,
                kind=kind,
                file_name=source.path.name,
                file_sha256=source.sha256,
                options={
                    k: v
                    for k, v in asdict(options).items()
                    if k not in ("batch_size", "requested_by")
                },
                rows_total=total,
                requested_by=options.requested_by,
            )
        try:
            outcomes, refused, counters = _load_batches(
                scope, work, load=load, workspace_id=workspace_id, run_id=run_id,
                batch_size=options.batch_size, timer=timer, progress=progress,
            )  # fmt: skip
        except BaseException as exc:
            if not options.dry_run:
                # committed batches stay either way
                status = "cancelled" if stopped_by_signal(exc) else "failed"
                with scope.batch() as conn:
                    finish_run(
                        conn, run_id, status=status, counts={"error": str(exc)[:2000]}, errors=None
                    )
            raise
        errors = concat_errors(
            [
                source.errors,
                work.errors,
                errors_where(
                    refused,
                    pl.lit(True),
                    reason=Reason.DUPLICATE_EXISTING,
                    column=None,
                    value=None,
                    detail="already stored (or stored meanwhile by another import)",
                ),
            ]
        )
        with timer.stage("report"):
            summary = summarise_run(
                kind=kind,
                file_name=source.path.name,
                processed=source.rows_read,
                outcomes=outcomes.join(refused, on=ROW, how="anti"),
                errors=errors,
                ignored_columns=prepared.mapping.ignored,
                mapped_columns={
                    prepared.headers[name]: name
                    for name, _ in sorted(prepared.mapping.fields.items(), key=lambda f: f[1])
                },
                run_id=None if options.dry_run else run_id,
                dry_run=options.dry_run,
                extra={**work.extra, **counters},
                preview=work.preview,
                timings=timer.seconds,
            )
            with scope.batch() as conn:
                if finish is not None:
                    finish(conn, workspace_id)
                finish_run(
                    conn, run_id, status=summary.status, counts=summary.counts(), errors=errors
                )
    if options.errors_out:
        write_errors_csv(source, errors, options.errors_out)
    return summary


def stopped_by_signal(exc: BaseException) -> bool:
    """Whether a signal (Ctrl-C, an orchestrator's SIGTERM) stopped the run rather than an error.

    A signal arriving mid-COPY can surface as the driver's error about the interrupted
    connection, so the whole chain of exceptions is looked at."""
    seen: BaseException | None = exc
    while seen is not None:
        if not isinstance(seen, Exception):
            return True
        if seen.__cause__ is not None:
            seen = seen.__cause__
        else:
            seen = None if seen.__suppress_context__ else seen.__context__
    return False


def _load_batches(
    scope: _Scope,
    work: Work,
    *,
    load: Loader,
    workspace_id: int,
    run_id: int,
    batch_size: int,
    timer: StageTimer,
    progress: Progress | None,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """(row, outcome) of every row sent, the rows refused, and the summed counters."""
    total = sum(frame.height for _, frame in work.frames)
    done = 0
    outcomes = [pl.DataFrame(schema={ROW: pl.Int64(), "outcome": pl.String()})]
    refused = [pl.DataFrame(schema={ROW: pl.Int64()})]
    counters: dict[str, int] = {}
    if progress:
        progress("load", 0, total)
    with timer.stage("load") as noted:
        for outcome, frame in work.frames:
            for batch in batches(frame, batch_size):
                with scope.batch() as conn:
                    result = load(conn, workspace_id, run_id, batch)
                    done += batch.height
                    record_progress(conn, run_id, done)
                refused.append(result.refused)
                outcomes.append(batch.select(ROW, pl.lit(outcome).alias("outcome")))
                for name, value in result.counters.items():
                    counters[name] = counters.get(name, 0) + value
                if progress:
                    progress("load", done, total)
        noted.update(rows=done, refused=sum(frame.height for frame in refused))
    return pl.concat(outcomes), pl.concat(refused), counters


__all__ = ["ImportOptions", "RunSummary", "import_contacts", "import_messages"]
