"""What both import flows share: the import task and the artifacts a run publishes."""

from __future__ import annotations

import re
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from mdpipe.imports import ImportOptions, import_contacts, import_messages
from mdpipe.report import RunSummary, summary_markdown

# the full list is in the database (`mdpipe runs show`) and in the errors_out CSV
ERROR_ROWS_IN_ARTIFACT = 200
IMPORTERS = {"contacts": import_contacts, "messages": import_messages}


@task(name="import file")
def run_import(kind: str, file: str, options: ImportOptions) -> RunSummary:
    """Run the library import; the database transaction, not Prefect state, is the unit of work."""
    return IMPORTERS[kind](file, options=options)


def finish(summary: RunSummary, *, workspace: str) -> dict[str, Any]:
    """Publish the run's artifacts and log its stages; returns the JSON summary."""
    publish_summary(summary, workspace=workspace)
    return log_summary(summary)


def artifact_key(workspace: str, kind: str, what: str) -> str:
    """A stable artifact key per workspace and kind (lowercase letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", workspace.lower()).strip("-") or "workspace"
    return f"mdpipe-{slug}-{kind}-{what}"


def publish_summary(summary: RunSummary, *, workspace: str) -> None:
    """The markdown summary and the first row errors as artifacts of the flow run."""
    hint = (
        f"Full error list: `mdpipe runs show {summary.run_id}` (add `--json` for machine use), "
        "or re-run with `errors_out` set to write the failed rows as a CSV to fix and re-upload."
        if summary.run_id is not None
        else "Dry run: nothing was written. Set `errors_out` to get the failed rows as a CSV."
    )
    create_markdown_artifact(
        summary_markdown(summary, errors_hint=hint),
        key=artifact_key(workspace, summary.kind, "summary"),
        description=f"{summary.kind} import of {summary.file_name}",
    )
    errors = summary.errors
    shown = errors.head(ERROR_ROWS_IN_ARTIFACT)
    create_table_artifact(
        shown.to_dicts()
        if shown.height
        else [
            {"row": None, "column": None, "value": None, "reason": None, "detail": "no row errors"}
        ],
        key=artifact_key(workspace, summary.kind, "errors"),
        description=f"first {shown.height} of {errors.height} row errors of {summary.file_name}",
    )


def log_summary(summary: RunSummary) -> dict[str, Any]:
    """Log the stage timings and counts; returns the JSON summary."""
    logger = get_run_logger()
    for stage, seconds in summary.timings.items():
        logger.info("stage %s took %.2f s", stage, seconds)
    result = summary.as_json()
    logger.info("summary: %s", result)
    return result
