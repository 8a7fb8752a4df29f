"""The Prefect flows, against Prefect's test harness (one temporary server for the session)."""

from __future__ import annotations

import os

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
