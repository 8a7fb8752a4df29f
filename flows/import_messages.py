"""Prefect flow: import message history (the same library function as `mdpipe import messages`).

Run it locally without deploying anything: `python -m flows.import_messages FILE [options]`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import (
    Channel,
    DatabaseSecret,
    DefaultRegion,
    DryRun,
    ErrorsOut,
    File,
    Mapping_,
    MappingFile,
    MaxBytes,
    MaxRows,
    TimestampFormat,
    Timezone,
    Workspace,
    close_import_runs,
    document_parameters,
    run_flow,
    run_locally,
)


@flow(
    name="import_messages",
    on_cancellation=[close_import_runs("cancelled")],
    on_crashed=[close_import_runs("failed")],
)
@document_parameters
def import_messages(
    file: File,
    workspace: Workspace = "default",
    mapping: Mapping_ = None,
    mapping_file: MappingFile = None,
    default_region: DefaultRegion = None,
    timezone: Timezone = "UTC",
    channel: Channel = None,
    timestamp_format: TimestampFormat = None,
    dry_run: DryRun = False,
    errors_out: ErrorsOut = None,
    max_rows: MaxRows = None,
    max_bytes: MaxBytes = None,
    database_secret: DatabaseSecret = None,
) -> dict[str, Any]:
    """Import past SMS into conversations (1:1 and group) on existing channels, never twice."""
    return run_flow("messages", locals())


if __name__ == "__main__":
    raise SystemExit(run_locally("messages", import_messages))
