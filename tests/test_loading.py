"""Loading: batches are atomic, interrupted runs resume without duplicates, races lose cleanly."""

from __future__ import annotations

import threading

import pytest

import mdpipe.imports
from mdpipe.db.engine import open_engine
from mdpipe.imports import ImportOptions, import_contacts
from tests.helpers import query


def contacts_csv(count: int, start: int = 0) -> str:
    lines = ["Email,Phone"]
    lines += [f"user{i}@example.com,+1555{i:07d}" for i in range(start, start + count)]
    return "\n".join(lines) + "\n"


def test_a_failing_batch_leaves_nothing_half_written_and_a_rerun_finishes(
    database_url, engine, write_csv, monkeypatch
):
    real_insert = mdpipe.imports.insert_contacts
    calls = {"n": 0}

    def insert_then_fail_second_batch(conn, batch, **kwargs):
        calls["n"] += 1
        lost = real_insert(conn, batch, **kwargs)  # the batch is written ...
        if calls["n"] == 2:
            raise ConnectionResetError("connection lost mid-batch")  # ... then the transaction dies
        return lost

    monkeypatch.setattr(mdpipe.imports, "insert_contacts", insert_then_fail_second_batch)
    path = write_csv(contacts_csv(25))
    options = ImportOptions(batch_size=10)
    with pytest.raises(ConnectionResetError):
        import_contacts(path, database_url=database_url, options=options)
    assert query(engine, "SELECT count(*) FROM contacts") == [(10,)]
    assert query(engine, "SELECT status, rows_done, error FROM import_runs") == [
        ("failed", 10, "connection lost mid-batch")
    ]

    monkeypatch.setattr(mdpipe.imports, "insert_contacts", real_insert)
    summary = import_contacts(path, database_url=database_url, options=options)
    assert (summary.imported, summary.skipped) == (15, 10)
    assert query(engine, "SELECT count(*), count(DISTINCT email_key) FROM contacts") == [(25, 25)]


def test_progress_is_reported_per_batch(database_url, write_csv):
    seen: list[tuple[str, int, int]] = []
    import_contacts(
        write_csv(contacts_csv(25)),
        database_url=database_url,
        options=ImportOptions(batch_size=10),
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    assert seen == [("load", 0, 25), ("load", 10, 25), ("load", 20, 25), ("load", 25, 25)]


def race(run_import, paths, database_url, monkeypatch):
    """Run two imports in threads that both plan before either loads; their summaries by file name."""
    barrier = threading.Barrier(len(paths))
    real_load_batches = mdpipe.imports._load_batches
    results = {}

    def load_after_all_planned(*args, **kwargs):
        barrier.wait(timeout=30)
        return real_load_batches(*args, **kwargs)

    def run(path):
        results[path.name] = run_import(path, database_url=database_url)

    monkeypatch.setattr(mdpipe.imports, "_load_batches", load_after_all_planned)
    threads = [threading.Thread(target=run, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_imports_racing_never_duplicate_a_contact(postgres_url, write_csv, monkeypatch):
    """Both plan against an empty workspace; the unique keys decide, the loser counts duplicates.

    PostgreSQL only: SQLite serialises writers, so it has no such race.
    """
    engine = open_engine(postgres_url)
    first = write_csv(contacts_csv(300), "a.csv")
    second = write_csv(contacts_csv(300, start=150), "b.csv")
    results = race(import_contacts, [first, second], postgres_url, monkeypatch)
    a, b = results["a.csv"], results["b.csv"]
    assert query(engine, "SELECT count(*) FROM contacts") == [(450,)]
    assert a.imported + b.imported == 450
    assert a.reasons.get("duplicate-existing", 0) + b.reasons.get("duplicate-existing", 0) == 150
    assert a.processed == a.imported + a.skipped and b.processed == b.imported + b.skipped


def test_two_message_imports_racing_never_double_a_message(postgres_url, write_csv, monkeypatch):
    from mdpipe.imports import import_messages
    from mdpipe.workspace import add_channel

    engine = open_engine(postgres_url)
    add_channel(engine, "default", "Main", "+15550100000")
    header = "Timestamp,Direction,Phone,Text,Channel"
    rows = [
        f"2025-06-01T10:{i // 60:02d}:{i % 60:02d}Z,out,+1415555{i % 7:04d},m{i},Main"
        for i in range(200)
    ]
    first = write_csv("\n".join([header, *rows[:150]]) + "\n", "a.csv")
    second = write_csv("\n".join([header, *rows[50:]]) + "\n", "b.csv")
    results = race(import_messages, [first, second], postgres_url, monkeypatch)
    a, b = results["a.csv"], results["b.csv"]
    assert query(engine, "SELECT count(*), count(DISTINCT text) FROM messages") == [(200, 200)]
    assert query(engine, "SELECT count(*) FROM conversations") == [(7,)]
    assert a.imported + b.imported == 200
    assert a.reasons.get("duplicate-existing", 0) + b.reasons.get("duplicate-existing", 0) == 100


def test_a_signal_that_surfaces_as_a_driver_error_still_counts_as_cancelled():
    from mdpipe.imports import stopped_by_signal

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("another command is already in progress") from None
    except RuntimeError as exc:
        assert stopped_by_signal(exc) is False  # `from None` cuts the chain: a real error
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("another command is already in progress")  # noqa: B904
    except RuntimeError as exc:
        assert stopped_by_signal(exc) is True
    assert stopped_by_signal(ValueError("bad")) is False
