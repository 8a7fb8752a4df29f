"""What the import flows share: typed parameters, the import task, artifacts and hooks."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Annotated, Any, Literal, TypeVar, cast, get_type_hints
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.blocks.system import Secret
from prefect.client.schemas.objects import FlowRun, State
from prefect.logging import get_logger
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff
from pydantic import Field
from pydantic.fields import FieldInfo
from sqlalchemy.exc import DBAPIError

from mdpipe.db.engine import connect_or_fail, transaction
from mdpipe.db.runs import close_runs_requested_by
from mdpipe.errors import MdpipeError
from mdpipe.imports import ImportOptions, import_contacts, import_messages
from mdpipe.report import RunSummary, summary_markdown

# the full list is in the database (`mdpipe runs show`) and in the errors_out CSV
ERROR_ROWS_IN_ARTIFACT = 200
IMPORTERS = {"contacts": import_contacts, "messages": import_messages}
IMPORT_OPTIONS = {f.name for f in fields(ImportOptions)} - {"batch_size", "requested_by"}


# Parameters as the Prefect UI shows them: a form with descriptions, choices and defaults.
File = Annotated[
    str,
    Field(
        min_length=1,
        description="The CSV to import: a path on the worker, or an https, s3, gs or az URL.",
    ),
]
Workspace = Annotated[
    str, Field(min_length=1, description="Workspace to import into (created on first use).")
]
Mapping_ = Annotated[
    dict[str, str | None] | None,
    Field(description='Column overrides {"CSV header": "field"}; null ignores a column.'),
]
MappingFile = Annotated[
    str | None, Field(description="A saved mapping file (YAML or JSON) on the worker.")
]
OnDuplicate = Annotated[
    Literal["skip", "update"],
    Field(description="A row matching an existing contact: skip it, or update the contact."),
]
DefaultRegion = Annotated[
    str | None,
    Field(
        pattern=r"^[A-Za-z]{2}$",
        description="Read numbers without +country code as this region's (e.g. US).",
    ),
]
Channel = Annotated[
    str | None,
    Field(
        min_length=1,
        description="The channel (name or number) of rows that name none: a file without a "
        "channel column, or an empty cell.",
    ),
]
TimestampFormat = Annotated[
    str | None,
    Field(
        pattern="%",
        description="strftime format of the timestamps, e.g. %m/%d/%Y %H:%M (tried before "
        "ISO 8601, RFC 2822 and Unix epoch seconds or milliseconds, which are read by default).",
    ),
]
Timezone = Annotated[
    str, Field(min_length=1, description="IANA zone of timestamps written without an offset.")
]
DryRun = Annotated[bool, Field(description="Do everything but write; report what would happen.")]
ErrorsOut = Annotated[
    str | None, Field(description="Write failed and skipped rows to this CSV path on the worker.")
]
MaxRows = Annotated[int | None, Field(ge=0, description="Row limit (default 5,000; 0 = no limit).")]
MaxBytes = Annotated[
    int | None, Field(ge=0, description="Size limit in bytes (default 10 MB; 0 = no limit).")
]
DatabaseSecret = Annotated[
    str | None,
    Field(
        description="Name of a Prefect Secret block holding the database URL; "
        "else the worker's MDPIPE_DATABASE_URL (never the URL itself as a parameter)."
    ),
]


F = TypeVar("F", bound=Callable[..., Any])


def document_parameters(fn: F) -> F:
    """`fn` with an `Args:` section made of its parameters' Field descriptions.

    Prefect's UI form takes parameter descriptions from the flow's Google-style docstring
    only (the Annotated descriptions above do not reach it), so they are written there once,
    from the one place they are declared. Apply it below `@flow`."""
    hints = get_type_hints(fn, include_extras=True)
    described = [
        f"    {name}: {meta.description}"
        for name in inspect.signature(fn).parameters
        for meta in getattr(hints.get(name), "__metadata__", ())
        if isinstance(meta, FieldInfo) and meta.description
    ]
    fn.__doc__ = "\n\n".join([inspect.cleandoc(fn.__doc__ or ""), "Args:\n" + "\n".join(described)])
    return fn


def database_url(secret_name: str | None) -> str | None:
    """The database URL from a Secret block, or None for the environment's."""
    if not secret_name:
        return None
    secret = cast(Secret, Secret.load(secret_name))
    return str(secret.get())


def is_transient(task: Any, task_run: Any, state: State) -> bool:
    """Retry only what may pass: lost connections, serialization failures, deadlocks."""
    try:
        state.result()
    except MdpipeError as exc:
        return exc.transient
    except DBAPIError as exc:
        code = getattr(exc.orig, "sqlstate", None) or ""
        return exc.connection_invalidated or code in {"40001", "40P01"} or code.startswith("08")
    except Exception:
        return False
    return False


@task(
    name="import file",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=is_transient,
)
def run_import(
    kind: str, file: str, options: ImportOptions, database_secret: str | None = None
) -> RunSummary:
    """Run the library import, updating a progress artifact as batches commit.

    The database transaction, not Prefect state, is the unit of work: a retry re-plans
    against what the earlier attempt committed, so no row is imported twice.
    """
    key = artifact_key(options.workspace, kind, "progress")
    progress_id = cast(
        UUID, create_progress_artifact(0.0, key=key, description=f"{kind} import of {file}")
    )

    def progress(stage: str, done: int, total: int) -> None:
        update_progress_artifact(progress_id, 100.0 * done / total if total else 100.0)

    # the library logs each stage (counts, timing) to "mdpipe": send those to the run's logs
    library_logger = logging.getLogger("mdpipe")
    library_logger.setLevel(logging.INFO)
    handler = APILogHandler()
    library_logger.addHandler(handler)
    try:
        return IMPORTERS[kind](
            file, options=options, database_url=database_url(database_secret), progress=progress
        )
    finally:
        handler.flush()
        library_logger.removeHandler(handler)


def requested_by(flow_run_id: Any) -> str:
    """How an import run names the flow run that asked for it."""
    return f"prefect-flow-run:{flow_run_id}"


def close_import_runs(status: str) -> Any:
    """A flow hook marking the import runs of a cancelled or crashed flow run."""

    def hook(flow: Any, flow_run: FlowRun, state: State) -> None:
        secret = (flow_run.parameters or {}).get("database_secret")
        with transaction(connect_or_fail(database_url(secret))) as conn:
            closed = close_runs_requested_by(
                conn, requested_by(flow_run.id), status=status, error=state.message or status
            )
        # hooks of a cancelled run may run in the worker's process, outside any run context
        get_logger("mdpipe.flows").info("marked %d import run(s) %s", closed, status)

    return hook


def run_flow(kind: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The body of both import flows: their parameters as ImportOptions, the import task,
    then the artifacts; returns the JSON summary."""
    options = {k: v for k, v in parameters.items() if k in IMPORT_OPTIONS}
    options["mapping"] = options.get("mapping") or {}
    summary = run_import(
        kind,
        parameters["file"],
        ImportOptions(**options, requested_by=requested_by(flow_run.id)),
        parameters.get("database_secret"),
    )
    return finish(
        summary, workspace=parameters["workspace"], errors_out=parameters.get("errors_out")
    )


def finish(summary: RunSummary, *, workspace: str, errors_out: str | None) -> dict[str, Any]:
    """Publish the run's artifacts and log its summary; returns the JSON summary."""
    publish_summary(summary, workspace=workspace, errors_out=errors_out)
    result = summary.as_json()
    get_run_logger().info("summary: %s", result)
    return result


def artifact_key(workspace: str, kind: str, what: str) -> str:
    """A stable artifact key per workspace and kind (lowercase letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", workspace.lower()).strip("-") or "workspace"
    return f"mdpipe-{slug}-{kind}-{what}"


def errors_hint(summary: RunSummary, *, errors_out: str | None) -> str:
    """Where the summary's reader finds every failed and skipped row."""
    if errors_out:
        where = f"The failed and skipped rows, ready to fix and re-upload: `{errors_out}` on the worker."
    elif summary.run_id is None:
        where = "Set `errors_out` to get the failed and skipped rows as a CSV."
    else:
        # not a re-run: it would count this run's imports as duplicates
        where = (
            "The failed and skipped rows as a CSV to fix and re-upload: "
            f"`mdpipe runs errors {summary.run_id} FILE -o errors.csv`, FILE being the imported "
            "file (or set `errors_out` when starting an import)."
        )
    if summary.run_id is None:
        return f"Dry run: nothing was written. {where}"
    return (
        f"Full error list: `mdpipe runs show {summary.run_id}` (`--json` for machine use). {where}"
    )


def publish_summary(summary: RunSummary, *, workspace: str, errors_out: str | None) -> None:
    """The markdown summary and the first row errors as artifacts of the flow run."""
    create_markdown_artifact(
        summary_markdown(summary, errors_hint=errors_hint(summary, errors_out=errors_out)),
        key=artifact_key(workspace, summary.kind, "summary"),
        description=f"{summary.kind} import of {summary.file_name}",
    )
    errors = summary.errors
    shown = errors.head(ERROR_ROWS_IN_ARTIFACT)
    create_table_artifact(
        shown.to_dicts()
        if shown.height
        else [{"row": None, "reason": None, "detail": "no row errors"}],
        key=artifact_key(workspace, summary.kind, "errors"),
        description=f"first {shown.height} of {errors.height} row errors of {summary.file_name}",
    )


def local_run_arguments(kind: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Flow parameters from command-line options, for `python -m flows.import_<kind> FILE ...`."""
    from mdpipe.cli import add_import_options
    from mdpipe.mapping import parse_map_options

    parser = argparse.ArgumentParser(prog=f"python -m flows.import_{kind}")
    add_import_options(parser, kind=kind)
    parser.add_argument("--workspace", default="default")
    parser.add_argument("--database-secret", help="Prefect Secret block with the database URL")
    args = parser.parse_args(argv)
    params = {
        "file": args.file,
        "workspace": args.workspace,
        "mapping": parse_map_options(args.map) or None,
        "mapping_file": args.mapping_file,
        "default_region": args.default_region,
        "dry_run": args.dry_run,
        "errors_out": args.errors_out,
        "max_rows": args.max_rows,
        "max_bytes": args.max_bytes,
        "database_secret": args.database_secret,
    }
    if kind == "contacts":
        params["on_duplicate"] = args.on_duplicate
    else:
        params["timezone"] = args.timezone
        params["channel"] = args.channel
        params["timestamp_format"] = args.timestamp_format
    return params


def run_locally(
    kind: str, flow_fn: Callable[..., dict[str, Any]], argv: list[str] | None = None
) -> int:
    """`python -m flows.import_<kind> FILE ...`: run the flow, print its JSON summary; a refused
    file, mapping or option ends in one line on stderr and exit status 1, as with `mdpipe`."""
    # the temporary server's telemetry logs an error on a machine without internet access;
    # an engineer's run sends none unless they set it
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        print(json.dumps(flow_fn(**local_run_arguments(kind, argv))))
    except MdpipeError as exc:
        print(f"import_{kind}: error: {exc}", file=sys.stderr)
        return 1
    return 0
