"""Remote sources: a file served over HTTP on loopback, and a bucket-like listing (fsspec memory)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from mdpipe.config import Limits
from mdpipe.errors import FileRefused
from mdpipe.imports import ImportOptions, import_contacts
from mdpipe.source import list_csv_files, local_copy
from mdpipe.sweep import plan_sweep

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def http_folder() -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(EXAMPLES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_file_served_over_http_imports(http_folder, database_url):
    summary = import_contacts(f"{http_folder}/contacts.csv", database_url=database_url)
    assert (summary.file_name, summary.imported, summary.failed) == ("contacts.csv", 4, 3)


def test_a_missing_remote_file_and_a_too_large_one_are_refused(http_folder, database_url):
    with pytest.raises(FileRefused, match="HTTP 404"):
        import_contacts(f"{http_folder}/nope.csv", database_url=database_url)
    with pytest.raises(FileRefused, match="CSV file is too large"):
        import_contacts(
            f"{http_folder}/contacts.csv",
            database_url=database_url,
            options=ImportOptions(max_bytes=100),
        )


def test_bucket_prefixes_are_listed_and_swept(database_url):
    fs = fsspec.filesystem("memory")
    fs.pipe("/inbox/a.csv", b"Email\na@example.com\n")
    fs.pipe("/inbox/b.CSV", b"Email\nb@example.com\n")
    fs.pipe("/inbox/notes.txt", b"not a csv")
    assert list_csv_files("memory://inbox") == ["memory:///inbox/a.csv", "memory:///inbox/b.CSV"]
    with local_copy("memory:///inbox/a.csv", limits=Limits()) as local:
        assert local.read_text() == "Email\na@example.com\n"
    summary = import_contacts("memory:///inbox/a.csv", database_url=database_url)
    assert summary.imported == 1
    plan = plan_sweep(
        "memory://inbox", kind="contacts", workspace="default", database_url=database_url
    )
    assert (plan.pending, plan.done) == (["memory:///inbox/b.CSV"], ["memory:///inbox/a.csv"])
    fs.rm("/inbox", recursive=True)


def test_local_folders_are_swept_by_content_not_name(tmp_path, database_url):
    (tmp_path / "one.csv").write_text("Email\na@example.com\n")
    import_contacts(tmp_path / "one.csv", database_url=database_url)
    (tmp_path / "renamed-copy.csv").write_text("Email\na@example.com\n")
    (tmp_path / "new.csv").write_text("Email\nz@example.com\n")
    plan = plan_sweep(tmp_path, kind="contacts", workspace="default", database_url=database_url)
    assert [Path(p).name for p in plan.pending] == ["new.csv"]
    assert sorted(Path(p).name for p in plan.done) == ["one.csv", "renamed-copy.csv"]
    assert (
        plan_sweep(tmp_path, kind="messages", workspace="default", database_url=database_url).done
        == []
    )
