"""Properties over generated files: every row lands in exactly one bucket; a re-run changes nothing."""

from __future__ import annotations

import csv
import io
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdpipe.db.engine import open_engine
from mdpipe.imports import ImportOptions, import_contacts
from mdpipe.workspace import add_property
from tests.helpers import query

EMAILS = ["a@example.com", "A@EXAMPLE.com", "b@example.com", "c@example.org", "bad", "x@", ""]
PHONES = ["+15551230001", "+1 555 123 0001", "+15551230002", "+442079460958", "12345", "+1", ""]
TIERS = ["1", "2.5", "gold", ""]

rows = st.lists(
    st.tuples(
        st.sampled_from(EMAILS), st.sampled_from(PHONES), st.sampled_from(TIERS), st.booleans()
    ),
    min_size=1,
    max_size=25,
)


def render(generated) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Email", "Phone", "Tier"])
    for email, phone, tier, ragged in generated:
        writer.writerow([email, phone, tier, "extra"] if ragged else [email, phone, tier])
    return out.getvalue()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=rows, second=rows, policy=st.sampled_from(["skip", "update"]))
def test_every_row_lands_in_one_bucket_and_reruns_change_nothing(
    database_url, tmp_path, first, second, policy
):
    engine = open_engine(database_url)
    workspace = uuid.uuid4().hex
    add_property(engine, workspace, "tier", "number")
    options = ImportOptions(workspace=workspace, on_duplicate=policy)
    paths = []
    for name, generated in (("first.csv", first), ("second.csv", second)):
        path = tmp_path / f"{workspace}-{name}"
        path.write_text(render(generated), encoding="utf-8")
        paths.append(path)

    before = 0
    for path, generated in zip(paths, (first, second), strict=True):
        summary = import_contacts(path, database_url=database_url, options=options)
        assert summary.processed == len(generated)
        assert (
            summary.processed
            == summary.imported + summary.updated + summary.skipped + summary.failed
        )
        errors = query(
            engine, 'SELECT DISTINCT "row" FROM row_errors WHERE run_id = :r', r=summary.run_id
        )
        assert len(errors) == summary.skipped + summary.failed
        count = query(
            engine,
            "SELECT count(*) FROM contacts c JOIN workspaces w ON w.id = c.workspace_id WHERE w.name = :w",
            w=workspace,
        )[0][0]
        assert count == before + summary.imported
        before = count

    # re-running the last file with the same options changes nothing
    snapshot = stored_contacts(engine, workspace)
    rerun = import_contacts(paths[1], database_url=database_url, options=options)
    assert rerun.imported == 0
    assert stored_contacts(engine, workspace) == snapshot
    engine.dispose()


def stored_contacts(engine, workspace: str) -> list[tuple]:
    return query(
        engine,
        "SELECT c.email, c.phone, CAST(c.properties AS TEXT) FROM contacts c "
        "JOIN workspaces w ON w.id = c.workspace_id WHERE w.name = :w ORDER BY c.id",
        w=workspace,
    )
