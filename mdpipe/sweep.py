"""Which files of a folder or bucket prefix still need importing (for scheduled migrations)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mdpipe.config import Limits
from mdpipe.db.engine import connect_or_fail, transaction
from mdpipe.db.runs import completed_runs_of
from mdpipe.source import file_sha256, list_csv_files, local_copy
from mdpipe.workspace import find_workspace


@dataclass(frozen=True)
class SweepPlan:
    """The CSV files found, split into those to import and those a completed run already imported."""

    pending: list[str]
    done: list[str]


def plan_sweep(
    location: str | Path, *, kind: str, workspace: str, database_url: str | None = None
) -> SweepPlan:
    """Split the CSV files at `location` by whether a completed run of this kind, in this
    workspace, already imported a file with the same sha256 (renamed copies count as done)."""
    files = list_csv_files(location)
    engine = connect_or_fail(database_url)
    pending: list[str] = []
    done: list[str] = []
    with transaction(engine) as conn:
        workspace_id = find_workspace(conn, workspace)
        for file in files:
            with local_copy(file, limits=Limits(max_rows=0, max_bytes=0)) as local:
                sha = file_sha256(local)
            imported = workspace_id is not None and completed_runs_of(conn, workspace_id, kind, sha)
            (done if imported else pending).append(file)
    return SweepPlan(pending=pending, done=done)
