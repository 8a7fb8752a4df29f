"""Prefect flow: import message history (the same library function as `mdpipe import messages`)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from flows.common import finish, run_import
from mdpipe.imports import ImportOptions


@flow(name="import_messages")
def import_messages(
    file: str,
    workspace: str = "default",
    mapping: dict[str, str | None] | None = None,
    mapping_file: str | None = None,
    default_region: str | None = None,
    timezone: str = "UTC",
    dry_run: bool = False,
    errors_out: str | None = None,
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Import past SMS from a CSV file into conversations; publishes summary and error artifacts."""
    options = ImportOptions(
        workspace=workspace,
        mapping=mapping or {},
        mapping_file=mapping_file,
        default_region=default_region,
        timezone=timezone,
        dry_run=dry_run,
        errors_out=errors_out,
        max_rows=max_rows,
        max_bytes=max_bytes,
    )
    return finish(run_import("messages", file, options), workspace=workspace)


if __name__ == "__main__":
    import_messages(sys.argv[1])
