"""Prefect flow: import every new CSV of a folder or bucket prefix, one deployment run per file.

Each file becomes its own flow run of the import deployment, so that every worker of the pool
(on one machine or many) takes files in parallel. Files a completed run already imported (same
sha256, same workspace) are skipped; the database's unique keys keep overlapping files from
importing anything twice.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from pydantic import Field

from flows.common import (
    DatabaseSecret,
    Workspace,
    artifact_key,
    database_url,
    document_parameters,
)
from mdpipe.sweep import SweepPlan, plan_sweep

Location = Annotated[
    str,
    Field(
        min_length=1,
        description="A folder on the worker, or a bucket prefix (s3://, gs://, az://).",
    ),
]
Kind = Annotated[Literal["contacts", "messages"], Field(description="What the files hold.")]
Deployment = Annotated[
    str | None,
    Field(description='The import deployment to run per file (default "import_<kind>/default").'),
]
Options = Annotated[
    dict[str, Any] | None,
    Field(
        description="Further parameters for each import run, e.g. "
        '{"on_duplicate": "update", "default_region": "US", "max_rows": 0}.'
    ),
]


@task(name="list new files", retries=2, retry_delay_seconds=5)
def list_new_files(
    location: str, kind: str, workspace: str, database_secret: str | None
) -> SweepPlan:
    """The files at `location` no completed run has imported yet."""
    return plan_sweep(
        location, kind=kind, workspace=workspace, database_url=database_url(database_secret)
    )


UNFINISHED = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
_PAGE = 200


@task(name="list files in flight", retries=2, retry_delay_seconds=5)
def files_in_flight(deployment: str, workspace: str) -> dict[str, str]:
    """file -> flow run name, for the deployment's runs into `workspace` not finished yet
    (queued by an earlier sweep, or still importing): a new sweep leaves those files alone."""
    found: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        unfinished = FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=UNFINISHED)),
        )
        offset = 0
        while runs := client.read_flow_runs(flow_run_filter=unfinished, limit=_PAGE, offset=offset):
            for run in runs:
                parameters = run.parameters or {}
                if parameters.get("workspace", "default") == workspace and "file" in parameters:
                    found[str(parameters["file"])] = run.name
            offset += len(runs)
    return found


@flow(name="sweep_imports")
@document_parameters
def sweep_imports(
    location: Location,
    kind: Kind = "contacts",
    workspace: Workspace = "default",
    deployment: Deployment = None,
    options: Options = None,
    database_secret: DatabaseSecret = None,
) -> dict[str, Any]:
    """Trigger one import run per new CSV file at `location`; skip files already imported
    and files an unfinished run of the deployment is importing."""
    plan = list_new_files(location, kind, workspace, database_secret)
    target = deployment or f"import_{kind}/default"
    in_flight = files_in_flight(target, workspace)
    in_progress = {file: in_flight[file] for file in plan.pending if file in in_flight}
    triggered = []
    for file in (f for f in plan.pending if f not in in_progress):
        parameters = {
            **(options or {}),
            "file": file,
            "workspace": workspace,
            "database_secret": database_secret,
        }
        run = cast(
            FlowRun, run_deployment(target, parameters=parameters, timeout=0, as_subflow=False)
        )
        triggered.append({"file": file, "flow_run_id": str(run.id), "flow_run_name": run.name})
        get_run_logger().info("triggered %s for %s", run.name, file)
    lines = [
        f"# Sweep of {location} ({kind})",
        "",
        f"{len(triggered)} file(s) triggered on `{target}`, {len(plan.done)} already imported, "
        f"{len(in_progress)} in progress.",
        "",
        *(f"- triggered `{t['file']}` as run {t['flow_run_name']}" for t in triggered),
        *(f"- skipped `{file}` (already imported)" for file in plan.done),
        *(
            f"- left `{file}` to run {name} (not finished yet)"
            for file, name in in_progress.items()
        ),
    ]
    create_markdown_artifact("\n".join(lines) + "\n", key=artifact_key(workspace, kind, "sweep"))
    return {"triggered": triggered, "skipped": plan.done, "in_progress": list(in_progress)}
