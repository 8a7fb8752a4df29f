"""Prefect flow: import a contacts CSV (the same library function as `mdpipe import contacts`).

Run it locally without deploying anything: `python -m flows.import_contacts FILE [options]`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import (
    DatabaseSecret,
    DefaultRegion,
    DryRun,
    ErrorsOut,
    File,
    Mapping_,
    MappingFile,
    MaxBytes,
    MaxRows,
    OnDuplicate,
    Workspace,
    close_import_runs,
    document_parameters,
    run_flow,
    run_locally,
)


@flow(
    name="import_contacts",
    on_cancellation=[close_import_runs("cancelled")],
    on_crashed=[close_import_runs("failed")],
)
@document_parameters
def import_contacts(
    file: File,
    workspace: Workspace = "default",
    mapping: Mapping_ = None,
    mapping_file: MappingFile = None,
    on_duplicate: OnDuplicate = "skip",
    default_region: DefaultRegion = None,
    dry_run: DryRun = False,
    errors_out: ErrorsOut = None,
    max_rows: MaxRows = None,
    max_bytes: MaxBytes = None,
    database_secret: DatabaseSecret = None,
) -> dict[str, Any]:
    """Import contacts from a CSV: validated, deduplicated by email and phone, never twice."""
    return run_flow("contacts", locals())


if __name__ == "__main__":
    raise SystemExit(run_locally("contacts", import_contacts))
