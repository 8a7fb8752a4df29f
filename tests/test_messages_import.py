"""The message-history import end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mdpipe.errors import MappingError, SetupError
from mdpipe.imports import ImportOptions, import_contacts, import_messages
from mdpipe.report import summary_markdown
from mdpipe.workspace import add_channel
from tests.helpers import query, stored_errors

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LINE = "+15550100000"


@pytest.fixture
def channel(engine):
    add_channel(engine, "default", "Main line", LINE)
    return "Main line"


def messages_csv(*rows: str, header: str = "Timestamp,Direction,Phone,Text,Channel") -> str:
    return "\n".join([header, *rows]) + "\n"


def stored_instants(engine) -> list[datetime]:
    values = [r[0] for r in query(engine, "SELECT sent_at FROM messages ORDER BY sent_at")]
    return [
        (datetime.fromisoformat(v) if isinstance(v, str) else v).replace(tzinfo=UTC)
        if (isinstance(v, str) or v.tzinfo is None)
        else v.astimezone(UTC)
        for v in values
    ]


def test_every_reason_slug(database_url, engine, channel, write_csv):
    content = messages_csv(
        "2025-06-01T10:00:00Z,outbound,+14155550132,ok,Main line,",
        "yesterday,outbound,+14155550132,bad time,Main line,",
        "2025-06-01T10:01:00Z,sideways,+14155550132,bad direction,Main line,",
        "2025-06-01T10:02:00Z,note,+14155550132,internal,Main line,",
        "2025-06-01T10:03:00Z,outbound,+1415;12345,bad phone,Main line,",
        "2025-06-01T10:04:00Z,outbound,+14155550132,,Main line,",
        "2025-06-01T10:05:00Z,inbound,+14155550132,,Main line,https://example.com/a.jpg",
        "2025-06-01T10:06:00Z,outbound,+14155550132,where?,Side line,",
        "2025-06-01T10:00:00Z,outbound,+14155550132,ok,Main line,",
        "2025-06-01T10:07:00Z,inbound,+14155550132,with photo,Main line,https://example.com/b.jpg",
        header="Timestamp,Direction,Phone,Text,Channel,Media URL",
    )
    path = write_csv(content)
    summary = import_messages(path, database_url=database_url)
    assert stored_errors(engine, summary.run_id) == [
        (3, "Timestamp", "invalid-timestamp"),
        (4, "Direction", "invalid-direction"),
        (5, "Direction", "internal-comment-not-supported"),
        (6, "Phone", "invalid-phone"),
        (7, "Text", "missing-text"),
        (8, "Text", "media-not-supported"),
        (9, "Channel", "unknown-channel"),
        (10, "Text", "duplicate-in-file"),
    ]
    assert (summary.processed, summary.imported, summary.skipped, summary.failed) == (10, 2, 1, 7)
    assert summary.dropped_attachments == 1
    again = import_messages(path, database_url=database_url)
    assert (again.imported, again.reasons["duplicate-existing"]) == (0, 2)
    assert query(engine, "SELECT count(*) FROM messages") == [(2,)]


def test_one_to_one_and_group_threads_match_whatever_the_order(
    database_url, engine, channel, write_csv
):
    first = write_csv(
        messages_csv(
            "2025-06-01T10:00:00Z,outbound,+14155550132,hi,Main line",
            "2025-06-01T10:01:00Z,outbound,+14155550132; +442079460958,group hi,Main line",
            "2025-06-01T10:02:00Z,inbound,+44 20 7946 0958,hello from London,Main line",
        ),
        "first.csv",
    )
    summary = import_messages(first, database_url=database_url)
    assert (summary.imported, summary.conversations_created) == (3, 3)
    later = write_csv(
        messages_csv(
            "2025-06-02T10:00:00Z,inbound,+442079460958;+14155550132,reply to group,Main line",
            '2025-06-02T10:01:00Z,inbound,"+14155550132,+14155550132",one to one again,+1 555 010 0000',
        ),
        "later.csv",
    )
    summary = import_messages(later, database_url=database_url)
    assert (summary.imported, summary.conversations_created) == (2, 0)
    threads = query(
        engine,
        "SELECT c.participants_key, c.is_group, count(m.id) FROM conversations c "
        "JOIN messages m ON m.conversation_id = c.id GROUP BY c.participants_key, c.is_group "
        "ORDER BY c.participants_key",
    )
    assert [(key, bool(group), n) for key, group, n in threads] == [
        ("+14155550132", False, 2),
        ("+14155550132,+442079460958", True, 2),
        ("+442079460958", False, 1),
    ]


def test_participants_link_to_existing_contacts(database_url, engine, channel, write_csv):
    import_contacts(write_csv("Phone\n+14155550132\n", "contacts.csv"), database_url=database_url)
    import_messages(
        write_csv(messages_csv("2025-06-01T10:00:00Z,out,+14155550132;+442079460958,hi,Main line")),
        database_url=database_url,
    )
    linked = query(
        engine,
        "SELECT p.phone, p.contact_id IS NOT NULL FROM conversation_participants p ORDER BY p.phone",
    )
    assert [(phone, bool(known)) for phone, known in linked] == [
        ("+14155550132", True),
        ("+442079460958", False),
    ]
    assert query(engine, "SELECT count(*) FROM contacts") == [(1,)]


def test_contacts_imported_after_their_history_are_linked_to_its_conversations(
    database_url, engine, channel, write_csv
):
    import_messages(
        write_csv(messages_csv("2025-06-01T10:00:00Z,out,+14155550132;+442079460958,hi,Main line")),
        database_url=database_url,
    )
    import_contacts(
        write_csv("Email,Phone\nmaria@example.com,+1 415 555 0132\n", "contacts.csv"),
        database_url=database_url,
    )
    linked = query(
        engine,
        "SELECT p.phone, ct.email FROM conversation_participants p "
        "LEFT JOIN contacts ct ON ct.id = p.contact_id ORDER BY p.phone",
    )
    assert linked == [("+14155550132", "maria@example.com"), ("+442079460958", None)]
    # an update that gives a contact the other party's phone links it too
    import_contacts(
        write_csv("Email,Phone\nmaria@example.com,+442079460958\n", "update.csv"),
        database_url=database_url,
        options=ImportOptions(on_duplicate="update"),
    )
    assert query(
        engine,
        "SELECT p.phone, ct.email FROM conversation_participants p "
        "JOIN contacts ct ON ct.id = p.contact_id ORDER BY p.phone",
    ) == [("+14155550132", "maria@example.com"), ("+442079460958", "maria@example.com")]


def test_timestamps_are_stored_as_instants(database_url, engine, channel, write_csv):
    path = write_csv(
        messages_csv(
            "2025-06-01T10:15:00Z,out,+14155550132,a,Main line",
            "2025-06-01 12:16:00,out,+14155550132,b,Main line",
            "2025-06-01T12:17:00+02:00,out,+14155550132,c,Main line",
            "1748773080,out,+14155550132,d,Main line",
            '"Sun, 01 Jun 2025 10:19:00 +0000",out,+14155550132,e,Main line',
            "1748773200123,out,+14155550132,f (epoch milliseconds),Main line",
        )
    )
    summary = import_messages(
        path, database_url=database_url, options=ImportOptions(timezone="Europe/Paris")
    )
    assert summary.imported == 6, summary.reasons
    assert [t.strftime("%H:%M:%S.%f") for t in stored_instants(engine)] == [
        "10:15:00.000000",
        "10:16:00.000000",
        "10:17:00.000000",
        "10:18:00.000000",
        "10:19:00.000000",
        "10:20:00.123000",
    ]


def test_a_spreadsheets_date_format_is_read_with_the_timestamp_format_option(
    database_url, engine, channel, write_csv
):
    """Excel writes dates as it shows them (6/1/2025 10:15): month or day first is the
    user's to say, never guessed."""
    path = write_csv(
        messages_csv(
            "6/1/2025 10:15,out,+14155550132,a,Main line",
            "6/1/2025 10:16:30,out,+14155550132,not the format,Main line",
            "2025-06-01T14:17:00Z,out,+14155550132,iso still reads,Main line",
        )
    )
    for unusable in ("m/d/Y", "%H"):  # no directive; an hour without minutes
        with pytest.raises(SetupError, match="--timestamp-format"):
            import_messages(
                path, database_url=database_url, options=ImportOptions(timestamp_format=unusable)
            )
    plain = import_messages(path, database_url=database_url, options=ImportOptions(dry_run=True))
    assert plain.reasons == {"invalid-timestamp": 2}
    assert "--timestamp-format" in plain.errors["detail"][0]

    summary = import_messages(
        path,
        database_url=database_url,
        options=ImportOptions(timestamp_format="%m/%d/%Y %H:%M", timezone="America/New_York"),
    )
    assert (summary.imported, summary.reasons) == (2, {"invalid-timestamp": 1})
    assert [t.strftime("%m-%d %H:%M") for t in stored_instants(engine)] == [
        "06-01 14:15",
        "06-01 14:17",
    ]


def test_text_is_kept_byte_for_byte(database_url, engine, channel, write_csv):
    body = '  "quoted", commas,\nnew line 🎉 and trailing space '
    escaped = body.replace('"', '""')
    import_messages(
        write_csv(messages_csv(f'2025-06-01T10:00:00Z,out,+14155550132,"{escaped}",Main line')),
        database_url=database_url,
    )
    assert query(engine, "SELECT text FROM messages") == [(body,)]


def test_external_ids_deduplicate_per_channel(database_url, engine, channel, write_csv):
    header = "Timestamp,Direction,Phone,Text,Channel,Message ID"
    first = write_csv(
        messages_csv(
            "2025-06-01T10:00:00Z,out,+14155550132,a,Main line,X1",
            "2025-06-01T10:01:00Z,out,+14155550132,b,Main line,X1",
            header=header,
        ),
        "a.csv",
    )
    summary = import_messages(first, database_url=database_url)
    assert summary.reasons == {"duplicate-in-file": 1}
    # an overlapping export: same id, even with an edited text, is the same message
    second = write_csv(
        messages_csv(
            "2025-06-01T10:00:00Z,out,+14155550132,a (edited),Main line,X1",
            "2025-06-01T10:02:00Z,out,+14155550132,c,Main line,X2",
            header=header,
        ),
        "b.csv",
    )
    summary = import_messages(second, database_url=database_url)
    assert (summary.imported, summary.reasons) == (1, {"duplicate-existing": 1})
    assert query(engine, "SELECT external_id FROM messages ORDER BY external_id") == [
        ("X1",),
        ("X2",),
    ]


def test_from_to_form_and_a_provider_export_map_automatically(database_url, engine, channel):
    summary = import_messages(EXAMPLES / "twilio_messages.csv", database_url=database_url)
    assert (summary.imported, summary.failed, summary.dropped_attachments) == (4, 1, 1)
    assert summary.reasons == {"media-not-supported": 1}
    assert {"Status", "DateCreated", "DateUpdated", "Price"} <= set(summary.ignored_columns)
    rows = query(
        engine,
        "SELECT m.direction, c.participants_key, m.external_id FROM messages m "
        "JOIN conversations c ON c.id = m.conversation_id ORDER BY m.sent_at",
    )
    assert rows[:2] == [
        ("outbound", "+14155550132", "SM0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        ("inbound", "+14155550132", "SM1a2b3c4d5e6f708192a3b4c5d6e7f801"),
    ]
    assert rows[3][:2] == ("inbound", "+442079460958")


def test_a_workspace_without_channels_refuses_the_file_before_writing(database_url, engine):
    with pytest.raises(SetupError, match=r"no channels.*mdpipe channels add"):
        import_messages(EXAMPLES / "messages.csv", database_url=database_url)
    assert query(engine, "SELECT count(*) FROM import_runs") == [(0,)]


def test_the_example_file_imports_after_adding_its_channel(database_url, engine, channel):
    summary = import_messages(EXAMPLES / "messages.csv", database_url=database_url)
    assert (summary.imported, summary.conversations_created) == (4, 2)
    assert import_messages(EXAMPLES / "messages.csv", database_url=database_url).imported == 0


def test_a_single_line_export_without_a_channel_column_imports_with_the_channel_option(
    database_url, engine, channel, write_csv
):
    add_channel(engine, "default", "Support", "+15550100001")
    path = write_csv(
        messages_csv(
            "2025-06-01T10:00:00Z,out,+14155550132,hi",
            "2025-06-01T10:05:00Z,in,+14155550132,hello back",
            header="Timestamp,Direction,Phone,Text",
        )
    )
    with pytest.raises(MappingError, match="--channel"):
        import_messages(path, database_url=database_url)
    with pytest.raises(SetupError, match="no channel named or numbered 'Sales'"):
        import_messages(path, database_url=database_url, options=ImportOptions(channel="Sales"))
    assert query(engine, "SELECT count(*) FROM import_runs") == [(0,)]

    summary = import_messages(
        path, database_url=database_url, options=ImportOptions(channel="+1 555 010 0001")
    )
    assert (summary.imported, summary.failed) == (2, 0)
    assert query(
        engine,
        "SELECT ch.name, count(*) FROM messages m JOIN channels ch ON ch.id = m.channel_id "
        "GROUP BY ch.name",
    ) == [("Support", 2)]


def test_the_channel_option_fills_empty_channel_cells_only(
    database_url, engine, channel, write_csv
):
    add_channel(engine, "default", "Support", "+15550100001")
    path = write_csv(
        messages_csv(
            "2025-06-01T10:00:00Z,out,+14155550132,named,Main line",
            "2025-06-01T10:05:00Z,out,+14155550132,unnamed,",
            "2025-06-01T10:06:00Z,out,+14155550132,unknown,Old line",
        )
    )
    summary = import_messages(
        path, database_url=database_url, options=ImportOptions(channel="support")
    )
    assert (summary.imported, summary.reasons) == (2, {"unknown-channel": 1})
    assert query(
        engine,
        "SELECT m.text, ch.name FROM messages m JOIN channels ch ON ch.id = m.channel_id "
        "ORDER BY m.sent_at",
    ) == [("named", "Main line"), ("unnamed", "Support")]


def test_dry_run_writes_nothing_but_counts_everything(database_url, engine, channel, write_csv):
    path = write_csv(messages_csv("2025-06-01T10:00:00Z,out,+14155550132,a,Main line"))
    dry = import_messages(path, database_url=database_url, options=ImportOptions(dry_run=True))
    assert (dry.run_id, dry.imported, dry.conversations_created) == (None, 1, 1)
    assert query(engine, "SELECT count(*) FROM messages") == [(0,)]
    assert query(engine, "SELECT count(*) FROM conversations") == [(0,)]
    assert query(engine, "SELECT count(*) FROM import_runs") == [(0,)]


def test_a_dry_run_previews_the_first_rows_as_they_would_be_stored(
    database_url, channel, write_csv
):
    """The product's "preview parsed messages": times in UTC, directions, channel, parties."""
    path = write_csv(
        messages_csv(
            "6/1/2025 10:15,received,+14155550132,hi,+15550100000",
            "bad,out,+14155550132,x,Main line",
            *(
                f"6/2/2025 9:0{i},Sent,+1 415 555 0132;+442079460958,m{i},Main line"
                for i in range(5)
            ),
        )
    )
    options = ImportOptions(
        dry_run=True, timezone="America/New_York", timestamp_format="%m/%d/%Y %H:%M"
    )
    summary = import_messages(path, database_url=database_url, options=options)
    preview = summary.preview
    assert preview.columns == [
        "row", "outcome", "sent_at", "direction", "channel", "participants", "text",
    ]  # fmt: skip
    assert preview.rows()[:2] == [
        (2, "imported", "2025-06-01T14:15:00Z", "inbound", "Main line", "+14155550132", "hi"),
        (
            4, "imported", "2025-06-02T13:00:00Z", "outbound", "Main line",
            "+14155550132,+442079460958", "m0",
        ),
    ]  # fmt: skip
    assert preview["row"].to_list() == [2, 4, 5, 6, 7]  # the first five, row 3 failed
    # the Prefect summary artifact of a dry run shows them too
    assert (
        "| 2 | imported | 2025-06-01T14:15:00Z | inbound | Main line | +14155550132 | hi |"
        in summary_markdown(summary)
    )


def test_mapping_and_timezone_errors_are_clear(database_url, channel, write_csv):
    with pytest.raises(MappingError, match="timestamp"):
        import_messages(
            write_csv("Direction,Phone,Text,Channel\nout,+1,a,b\n"), database_url=database_url
        )
    with pytest.raises(SetupError, match="time zone"):
        import_messages(
            write_csv(messages_csv("2025-06-01T10:00:00Z,out,+14155550132,a,Main line")),
            database_url=database_url,
            options=ImportOptions(timezone="Mars/Olympus"),
        )


def test_json_summary_keys(database_url, channel, write_csv):
    summary = import_messages(
        write_csv(messages_csv("2025-06-01T10:00:00Z,out,+14155550132,a,Main line")),
        database_url=database_url,
    )
    assert list(summary.as_json()) == [
        "run_id", "status", "processed", "imported", "skipped", "failed",
        "conversations_created", "dropped_attachments", "ignored_columns", "reasons",
    ]  # fmt: skip
