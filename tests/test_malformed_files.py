"""Any bytes at all: an import refuses the file with a clear message or reports every row;
it never raises anything else (bad input is normal input for an importer)."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mdpipe.db.engine import open_engine
from mdpipe.errors import FileRefused, MappingError
from mdpipe.imports import ImportOptions, import_contacts, import_messages
from mdpipe.workspace import add_channel

# the pieces that break CSV parsers and validators, and enough plain text to make rows
PIECES = [
    ",", ";", "\t", '"', '""', "\n", "\r\n", "\r", " ", "\ufeff", "\x00", "\xff\xfe",
    "email", "phone", "Email", "Phone", "timestamp", "direction", "text", "channel",
    "a@example.com", "+15551234567", "+1", "out", "in", "2025-06-01T10:15:00Z", "1748773080",
    "é", "🎉", "=cmd", ":::",
]  # fmt: skip
HEADERS = {
    "contacts": ["email,phone", "Email;Phone;Tier", "name\tphone"],
    "messages": ["timestamp,direction,phone,text", "timestamp;direction;phone;text;channel"],
}
text = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


@st.composite
def files(draw, kind: str) -> bytes:
    """Mostly a header that maps and a body of pieces; sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200) | text.map(str.encode))
    header = draw(st.sampled_from(HEADERS[kind]))
    return (header + draw(st.sampled_from(["\n", "\r\n"])) + draw(text)).encode()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), kind=st.sampled_from(["contacts", "messages"]))
def test_any_bytes_are_refused_clearly_or_every_row_is_accounted_for(tmp_path_factory, data, kind):
    content = data.draw(files(kind))
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / f"{uuid.uuid4().hex}.csv"
    path.write_bytes(content)
    url = f"sqlite:///{folder / 'db.sqlite'}"
    if kind == "messages":
        engine = open_engine(url)
        add_channel(engine, "default", "Main line", "+15550100000")
        engine.dispose()
    options = ImportOptions(dry_run=True, channel="Main line" if kind == "messages" else None)
    run = import_contacts if kind == "contacts" else import_messages
    try:
        summary = run(path, database_url=url, options=options)
    except (FileRefused, MappingError) as refused:
        assert str(refused).strip() and "\n" not in str(refused)
        event(f"refused: {type(refused).__name__}")
        return
    event(f"imported {kind}")
    assert summary.processed == (
        summary.imported + summary.updated + summary.skipped + summary.failed
    )
