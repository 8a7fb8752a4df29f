"""Prefect flow: import a contacts CSV (the same library function as `mdpipe import contacts`)."""

from __future__ import annotations

import sys
from typing import Any, Literal

from prefect import flow

from flows.common import finish, run_import
from mdpipe.imports import ImportOptions


@flow(name="import_contacts")
def import_contacts(
    file: str,
    workspace: str = "default",
    mapping: dict[str, str | None] | None = None,
    mapping_file: str | None = None,
    on_duplicate: Literal["skip", "update"] = "skip",
    default_region: str | None = None,
    dry_run: bool = False,
    errors_out: str | None = None,
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Import contacts from a CSV file; publishes the summary and errors as artifacts."""
    options = ImportOptions(
        workspace=workspace,
        mapping=mapping or {},
        mapping_file=mapping_file,
        on_duplicate=on_duplicate,
        default_region=default_region,
        dry_run=dry_run,
        errors_out=errors_out,
        max_rows=max_rows,
        max_bytes=max_bytes,
    )
    return finish(run_import("contacts", file, options), workspace=workspace)


if __name__ == "__main__":
    import_contacts(sys.argv[1])
