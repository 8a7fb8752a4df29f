"""End to end: a real Prefect server on loopback, deployments from prefect.yaml, a process worker.

Runs both imports and a sweep over a folder of three files through the deployments, then
checks through the Prefect REST API that the runs completed and their artifacts carry the
right counts. Where Debian's chromium is installed, it takes a screenshot of the contacts
run's page (saved to $MDPIPE_E2E_SCREENSHOT when set).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mdpipe.db.engine import open_engine
from mdpipe.workspace import add_channel
from tests.helpers import query

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).parent / "prefect")
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prefect_env(tmp_path: Path, postgres_url: str) -> Iterator[dict[str, str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        MDPIPE_DATABASE_URL=postgres_url,
    )
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(
            lambda: httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200, 120
        )
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds} s")


def prefect(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PREFECT, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def api(env: dict[str, str], method: str, path: str, **body: Any) -> Any:
    """One REST call; a 503 (the server's SQLite busy) is retried, as Prefect's own client does."""
    for attempt in range(5):
        response = httpx.request(
            method, env["PREFECT_API_URL"] + path, json=body or None, timeout=30
        )
        if response.status_code != 503:
            break
        time.sleep(2**attempt)
    response.raise_for_status()
    return response.json()


def run_deployment(env: dict[str, str], name: str, parameters: dict[str, Any]) -> str:
    deployment = api(env, "GET", f"/deployments/name/{name}")
    run = api(
        env, "POST", f"/deployments/{deployment['id']}/create_flow_run", parameters=parameters
    )
    return str(run["id"])


def wait_completed(env: dict[str, str], run_id: str, seconds: float = 240) -> None:
    def finished() -> bool:
        state = api(env, "GET", f"/flow_runs/{run_id}")["state"]
        assert state["type"] not in ("FAILED", "CRASHED", "CANCELLED"), state
        return state["type"] == "COMPLETED"

    wait_for(finished, seconds)


def log_messages(env: dict[str, str], run_id: str) -> list[str]:
    """The messages the run logged, oldest first."""
    found = api(
        env, "POST", "/logs/filter", logs={"flow_run_id": {"any_": [run_id]}}, sort="TIMESTAMP_ASC"
    )
    return [log["message"] for log in found]


def artifacts_of(env: dict[str, str], run_id: str, field: str = "data") -> dict[str, Any]:
    found = api(env, "POST", "/artifacts/filter", artifacts={"flow_run_id": {"any_": [run_id]}})
    return {a["key"]: a[field] for a in found if a.get("key")}


@pytest.fixture
def deployed(
    prefect_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """prefect.yaml deployed on the server, and a process worker polling the pool."""
    env = prefect_env
    branch = subprocess.run(
        ["git", "rev-parse", "--abbrev-ref", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    prefect(env, "work-pool", "create", "mdpipe", "--type", "process")
    prefect(env, "variable", "set", "mdpipe_repository", str(ROOT))
    prefect(env, "variable", "set", "mdpipe_branch", branch)
    prefect(env, "--no-prompt", "deploy", "--all")
    add_channel(open_engine(postgres_url), "default", "Main line", "+15550100000")

    workdir = tmp_path / "worker"
    workdir.mkdir()
    worker_log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", "mdpipe", "--limit", "4"],
        env=env, cwd=workdir, stdout=worker_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield env
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_deployments_run_both_imports_and_a_sweep(deployed, postgres_url, tmp_path):
    env = deployed
    contacts_run = run_deployment(
        env, "import_contacts/default", {"file": str(ROOT / "examples" / "contacts.csv")}
    )
    messages_run = run_deployment(
        env, "import_messages/default", {"file": str(ROOT / "examples" / "messages.csv")}
    )
    wait_completed(env, contacts_run)
    wait_completed(env, messages_run)

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(3):
        rows = "\n".join(f"sweep{n}-{i}@example.com" for i in range(10))
        (inbox / f"batch{n}.csv").write_text(f"Email\n{rows}\n")
    shutil.copy(ROOT / "examples" / "contacts.csv", inbox / "imported-already.csv")
    sweep_run = run_deployment(
        env, "sweep_imports/default", {"location": str(inbox), "kind": "contacts"}
    )
    wait_completed(env, sweep_run)
    deployment = api(env, "GET", "/deployments/name/import_contacts/default")

    def sweep_runs() -> list[dict[str, Any]]:
        runs = api(
            env, "POST", "/flow_runs/filter", deployments={"id": {"any_": [deployment["id"]]}}
        )
        return [r for r in runs if str(r["id"]) != contacts_run]

    wait_for(lambda: len(sweep_runs()) == 3, 60)
    for run in sweep_runs():
        wait_completed(env, str(run["id"]))

    stage_lines = [m for m in log_messages(env, contacts_run) if m.startswith("stage ")]
    stages = [line.split(":")[0] for line in stage_lines]
    # each stage logged once: the library's records reach the run by one path only
    assert stages == [f"stage {s}" for s in ("read", "map", "validate", "dedupe", "load", "report")]

    # the form the UI shows for a deployment: every parameter with its description
    form = api(env, "GET", "/deployments/name/import_contacts/default")["parameter_openapi_schema"]
    assert all(spec.get("description") for spec in form["properties"].values()), form
    assert form["properties"]["on_duplicate"]["enum"] == ["skip", "update"]

    contacts = artifacts_of(env, contacts_run)
    assert "| 9 | 4 | 0 | 2 | 3 |" in contacts["mdpipe-default-contacts-summary"]
    assert contacts["mdpipe-default-contacts-progress"] == 100.0
    assert "invalid-email" in str(contacts["mdpipe-default-contacts-errors"])
    messages = artifacts_of(env, messages_run)
    assert "Conversations created: 2" in messages["mdpipe-default-messages-summary"]
    sweep = artifacts_of(env, sweep_run)["mdpipe-default-contacts-sweep"]
    assert "3 file(s) triggered" in sweep and "1 already imported" in sweep
    for run in sweep_runs():
        assert (
            "| 10 | 10 | 0 | 0 | 0 |"
            in artifacts_of(env, str(run["id"]))["mdpipe-default-contacts-summary"]
        )

    engine = open_engine(postgres_url)
    assert query(engine, "SELECT count(*) FROM contacts") == [(34,)]
    assert query(engine, "SELECT count(*) FROM messages") == [(4,)]
    assert query(engine, "SELECT count(*) FROM import_runs WHERE status = 'completed'") == [(5,)]
    summary_id = artifacts_of(env, contacts_run, "id")["mdpipe-default-contacts-summary"]
    take_screenshots(
        env,
        {"": f"runs/flow-run/{contacts_run}", "-summary": f"artifacts/artifact/{summary_id}"},
        tmp_path,
    )


def test_cancelling_a_deployed_run_keeps_committed_batches_and_a_rerun_finishes(
    deployed, postgres_url, tmp_path
):
    """Cancel as the UI does (the API's Cancelling state) once the first batch committed."""
    from benchmarks.generate import contacts_frame

    env = deployed
    big = tmp_path / "big.csv"
    contacts_frame(1_000_000).write_csv(big)
    parameters = {"file": str(big), "max_rows": 0, "max_bytes": 0}
    run_id = run_deployment(env, "import_contacts/default", parameters)
    engine = open_engine(postgres_url)

    def first_batch_committed() -> bool:
        done = query(engine, "SELECT coalesce(max(rows_done), 0) FROM import_runs")[0][0]
        return int(done) > 0

    wait_for(first_batch_committed, 180)
    api(env, "POST", f"/flow_runs/{run_id}/set_state", state={"type": "CANCELLING"}, force=True)

    def cancelled() -> bool:
        return api(env, "GET", f"/flow_runs/{run_id}")["state"]["type"] == "CANCELLED"

    wait_for(cancelled, 120)
    ((status, done, total),) = query(
        engine, "SELECT status, rows_done, rows_total FROM import_runs"
    )
    assert status == "cancelled" and 0 < done < total
    assert query(engine, "SELECT count(*) FROM contacts") == [(done,)]

    rerun = run_deployment(env, "import_contacts/default", parameters)
    wait_completed(env, rerun, 300)
    assert query(engine, "SELECT count(*), count(DISTINCT email_key) FROM contacts") == [
        (total, total)
    ]
    summary = artifacts_of(env, rerun)["mdpipe-default-contacts-summary"]
    assert f"| {total - done} |" in summary


def take_screenshots(env: dict[str, str], pages: dict[str, str], tmp_path: Path) -> None:
    """Screenshots of UI pages; $MDPIPE_E2E_SCREENSHOT names the first, the others get a suffix."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium is not installed: no screenshots of the UI")
        return
    first = Path(os.environ.get("MDPIPE_E2E_SCREENSHOT", tmp_path / "flow-run.png"))
    ui = env["PREFECT_API_URL"].removesuffix("/api")
    for suffix, page in pages.items():
        target = first.with_name(f"{first.stem}{suffix}{first.suffix}")
        screenshot(browser, f"{ui}/{page}", target, tmp_path)


def screenshot(browser: str, url: str, target: Path, tmp_path: Path) -> None:
    """One page to PNG; a second try when headless chromium exits without writing it."""
    for attempt in range(2):
        subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={tmp_path / f'chromium-{target.stem}-{attempt}'}",
                "--window-size=1440,2000", "--virtual-time-budget=20000", f"--screenshot={target}",
                url,
            ],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if target.exists():
            break
    assert target.stat().st_size > 10_000, f"no screenshot of {url}"
