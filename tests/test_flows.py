"""The Prefect flows, against Prefect's test harness (one temporary server for the session)."""

from __future__ import annotations

import json
import os
import uuid

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.testing.utilities import prefect_test_harness

from flows.import_contacts import import_contacts
from tests.helpers import query


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    with prefect_test_harness(server_startup_timeout=90):
        yield


def artifacts(key: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
        )


def test_contacts_flow_imports_and_publishes_artifacts(
    prefect_server, database_url, engine, write_csv, monkeypatch
):
    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    path = write_csv("Email,Phone\na@example.com,+15551234567\nbad,\n")
    result = import_contacts(str(path), workspace="Flow Test")
    assert (result["processed"], result["imported"], result["failed"]) == (2, 1, 1)
    assert query(engine, "SELECT count(*) FROM contacts") == [(1,)]
    summary = artifacts("mdpipe-flow-test-contacts-summary")
    assert summary and "| 2 | 1 | 0 | 0 | 1 |" in summary[0].data
    errors = artifacts("mdpipe-flow-test-contacts-errors")
    assert errors and "invalid-email" in str(errors[0].data)
    assert f"mdpipe runs show {result['run_id']}" in summary[0].data
    assert f"mdpipe runs errors {result['run_id']} FILE -o errors.csv" in summary[0].data


def test_the_summary_says_where_the_errors_csv_was_written(
    prefect_server, database_url, write_csv, monkeypatch, tmp_path
):
    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    errors_csv = tmp_path / "failed.csv"
    path = write_csv("Email\nbad\n")
    workspace = f"errors {uuid.uuid4().hex}"  # its own artifact key: one artifact to read
    import_contacts(str(path), workspace=workspace, errors_out=str(errors_csv))
    (artifact,) = artifacts(f"mdpipe-{workspace.replace(' ', '-')}-contacts-summary")
    summary = artifact.data
    assert f"`{errors_csv}` on the worker" in summary
    assert "bad" in errors_csv.read_text(encoding="utf-8")


def test_messages_flow_imports_and_publishes_artifacts(
    prefect_server, database_url, engine, monkeypatch
):
    from pathlib import Path

    from flows.import_messages import import_messages
    from mdpipe.workspace import add_channel

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    add_channel(engine, "default", "Main line", "+15550100000")
    example = Path(__file__).resolve().parent.parent / "examples" / "messages.csv"
    result = import_messages(str(example))
    assert (result["imported"], result["conversations_created"]) == (4, 2)
    summary = artifacts("mdpipe-default-messages-summary")
    assert summary and "Conversations created: 2" in summary[0].data


def test_a_transient_failure_in_the_load_is_retried_and_counts_stay_exact(
    prefect_server, database_url, engine, write_csv, monkeypatch
):
    import mdpipe.imports
    from mdpipe.errors import DatabaseUnavailable

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    real_insert = mdpipe.imports.insert_contacts
    calls = {"n": 0}

    def flaky_insert(conn, batch, **kwargs):
        calls["n"] += 1
        refused = real_insert(conn, batch, **kwargs)
        if calls["n"] == 2:  # the second batch is written, then the connection drops
            raise DatabaseUnavailable("server closed the connection unexpectedly")
        return refused

    monkeypatch.setattr(mdpipe.imports, "insert_contacts", flaky_insert)
    monkeypatch.setattr("flows.common.run_import.retry_delay_seconds", [0, 0, 0], raising=False)
    rows = "\n".join(f"u{i}@example.com" for i in range(30))
    path = write_csv(f"Email\n{rows}\n")
    from flows.common import run_import
    from mdpipe.imports import ImportOptions

    summary = run_import.with_options(retry_delay_seconds=0)(
        "contacts", str(path), ImportOptions(batch_size=10)
    )
    # batch 1 commits, batch 2 is written then lost with the connection; the retry re-plans
    # against the 10 stored rows and loads the other 20 in two batches
    assert calls["n"] == 4
    assert (summary.imported, summary.skipped, summary.processed) == (20, 10, 30)
    assert query(engine, "SELECT count(*), count(DISTINCT email_key) FROM contacts") == [(30, 30)]
    assert query(engine, "SELECT status FROM import_runs ORDER BY id") == [
        ("failed",),
        ("completed",),
    ]


def test_a_bad_file_is_not_retried(prefect_server, database_url, write_csv, monkeypatch):
    from prefect.states import Failed

    from flows.common import is_transient
    from mdpipe.errors import FileRefused

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    assert is_transient(None, None, Failed(data=FileRefused("bad file"))) is False
    from mdpipe.errors import DatabaseUnavailable

    assert is_transient(None, None, Failed(data=DatabaseUnavailable("gone"))) is True


def test_a_cancelled_run_is_marked_and_a_rerun_finishes_without_duplicates(
    prefect_server, database_url, engine, write_csv, monkeypatch
):
    from prefect.exceptions import TerminationSignal

    import mdpipe.imports

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    real_insert = mdpipe.imports.insert_contacts
    calls = {"n": 0}

    def cancelled_during_second_batch(conn, batch, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise TerminationSignal(signal=15)  # what Prefect raises when the UI cancels a run
        return real_insert(conn, batch, **kwargs)

    monkeypatch.setattr(mdpipe.imports, "insert_contacts", cancelled_during_second_batch)
    rows = "\n".join(f"u{i}@example.com" for i in range(30))
    path = write_csv(f"Email\n{rows}\n")
    from flows.common import run_import
    from mdpipe.imports import ImportOptions

    with pytest.raises(TerminationSignal):
        run_import.with_options(retries=0)("contacts", str(path), ImportOptions(batch_size=10))
    assert query(engine, "SELECT status, rows_done FROM import_runs") == [("cancelled", 10)]
    assert query(engine, "SELECT count(*) FROM contacts") == [(10,)]
    monkeypatch.setattr(mdpipe.imports, "insert_contacts", real_insert)
    result = import_contacts(str(path))
    assert (result["imported"], result["skipped"]) == (20, 10)
    assert query(engine, "SELECT count(*) FROM contacts") == [(30,)]


def test_the_cancellation_hook_closes_the_import_runs_of_its_flow_run(
    database_url, engine, monkeypatch
):
    from types import SimpleNamespace
    from uuid import uuid4

    from prefect.states import Cancelled

    from flows.common import close_import_runs, requested_by
    from mdpipe.db.engine import transaction
    from mdpipe.db.runs import start_run

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    flow_run_id = uuid4()
    query(engine, "INSERT INTO workspaces (name) VALUES ('w')")
    with transaction(engine) as conn:
        start_run(
            conn, workspace_id=1, kind="contacts", file_name="a.csv", file_sha256="0" * 64,
            options={}, rows_total=1, requested_by=requested_by(flow_run_id),
        )  # fmt: skip
    hook = close_import_runs("cancelled")
    from prefect.logging.loggers import disable_run_logger

    with disable_run_logger():
        hook(
            None,
            SimpleNamespace(id=flow_run_id, parameters={}),
            Cancelled(message="cancelled from the UI"),
        )
    assert query(engine, "SELECT status, error FROM import_runs") == [
        ("cancelled", "cancelled from the UI")
    ]


def test_progress_artifact_and_stage_logs(prefect_server, database_url, write_csv, monkeypatch):
    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    path = write_csv("Email\na@example.com\nb@example.com\n")
    state = import_contacts(str(path), workspace="progress", return_state=True)
    progress = artifacts("mdpipe-progress-contacts-progress")
    assert progress and progress[0].data == 100.0
    import logging
    import time

    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    for handler in logging.getLogger("mdpipe").handlers:
        handler.flush()
    time.sleep(2)  # the API log handler ships records in the background
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    messages = " | ".join(log.message for log in logs)
    for stage in ("read", "map", "validate", "dedupe", "load"):
        assert f"stage {stage}:" in messages


def test_every_parameter_of_every_flow_has_a_description_for_the_ui_form():
    """Prefect's form reads descriptions from the flow's docstring, not from Annotated."""
    from flows.import_messages import import_messages
    from flows.sweep_imports import sweep_imports

    for flow in (import_contacts, import_messages, sweep_imports):
        properties = flow.parameters.properties
        missing = [name for name, spec in properties.items() if not spec.get("description")]
        assert properties and not missing, (flow.name, missing)
    assert (
        "skip it, or update" in import_contacts.parameters.properties["on_duplicate"]["description"]
    )


def test_a_bad_parameter_is_refused_before_the_flow_runs(
    prefect_server, database_url, engine, write_csv, monkeypatch
):
    from prefect.exceptions import ParameterTypeError

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    path = write_csv("Email\na@example.com\n")
    with pytest.raises(ParameterTypeError):
        import_contacts(str(path), on_duplicate="overwrite")
    with pytest.raises(ParameterTypeError):
        import_contacts(str(path), max_rows=-1)
    assert query(engine, "SELECT count(*) FROM import_runs") == [(0,)]


def test_the_database_url_can_come_from_a_secret_block(
    prefect_server, database_url, engine, write_csv, monkeypatch
):
    from prefect.blocks.system import Secret

    monkeypatch.setenv("MDPIPE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/wrong")
    Secret(value=database_url).save("mdpipe-test-db", overwrite=True)
    result = import_contacts(
        str(write_csv("Email\na@example.com\n")), database_secret="mdpipe-test-db"
    )
    assert result["imported"] == 1
    assert query(engine, "SELECT count(*) FROM contacts") == [(1,)]


def test_local_runs_take_the_commands_options():
    from flows.common import local_run_arguments

    params = local_run_arguments(
        "contacts",
        ["people.csv", "--map", "Cell=phone", "--on-duplicate", "update", "--max-rows", "0"],
    )
    assert params["file"] == "people.csv"
    assert (params["mapping"], params["on_duplicate"], params["max_rows"]) == (
        {"Cell": "phone"},
        "update",
        0,
    )
    messages = local_run_arguments(
        "messages",
        [
            "m.csv",
            *("--timezone", "Europe/Paris"),
            *("--channel", "Main line"),
            *("--timestamp-format", "%d/%m/%Y %H:%M"),
        ],
    )
    assert (messages["timezone"], messages["channel"], messages["timestamp_format"]) == (
        "Europe/Paris",
        "Main line",
        "%d/%m/%Y %H:%M",
    )


def test_a_local_run_prints_the_summary_or_one_line_for_a_refused_file(
    prefect_server, database_url, write_csv, monkeypatch, capsys, tmp_path
):
    from flows.common import run_locally

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    path = write_csv("Email\na@example.com\n")
    assert run_locally("contacts", import_contacts, [str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == 1

    missing = tmp_path / "missing.csv"
    assert run_locally("contacts", import_contacts, [str(missing)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1] == f"import_contacts: error: {missing}: no such file"


def test_a_sweep_leaves_alone_the_files_an_unfinished_run_is_importing(
    prefect_server, database_url, monkeypatch, tmp_path
):
    """A sweep firing again before the runs of the last one finished triggers nothing twice."""
    from flows.sweep_imports import sweep_imports

    monkeypatch.setenv("MDPIPE_DATABASE_URL", database_url)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(2):
        (inbox / f"batch{n}.csv").write_text(f"Email\nsweep{n}@example.com\n", encoding="utf-8")
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_deployment(flow_id=client.create_flow_from_name("import_contacts"), name=name)
    target = f"import_contacts/{name}"

    first = sweep_imports(str(inbox), deployment=target)
    assert [t["file"] for t in first["triggered"]] == [
        str(inbox / f"batch{n}.csv") for n in range(2)
    ]
    # no worker serves this deployment: both runs stay scheduled
    (inbox / "batch2.csv").write_text("Email\nsweep2@example.com\n", encoding="utf-8")
    second = sweep_imports(str(inbox), deployment=target)
    assert [t["file"] for t in second["triggered"]] == [str(inbox / "batch2.csv")]
    assert second["in_progress"] == [str(inbox / f"batch{n}.csv") for n in range(2)]
    other = sweep_imports(str(inbox), deployment=target, workspace="another")
    assert len(other["triggered"]) == 3  # runs into another workspace are not these
