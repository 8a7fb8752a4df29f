"""The contacts import end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json

import pytest

from mdpipe.errors import FileRefused, MappingError
from mdpipe.imports import ImportOptions, import_contacts
from mdpipe.report import summary_markdown
from mdpipe.workspace import add_property, export_contacts
from tests.helpers import query, stored_errors

EVERY_PROBLEM = """First Name,Email,Phone,Tier,Member Since,VIP
Ann,ann@example.com,+1 555 123 4567,3,2024-01-31,yes
Bob,not-an-email,+15551230000,1,2024-02-01,no
Cy,cy@example.com,12345,1,2024-02-01,no
Dee,,,,,
Eve,eve@example.com,+15551239999,gold,2024-02-30,perhaps
Fay,ANN@example.com,+15551238888,1,2024-02-01,no
Gus,gus@example.com,+15551234567,1,2024-02-01,no
Hal,hal@example.com
Ivy,bad@,+1,,,
Jo,existing@example.com,+15550000002,,,
Kim,,+15550000001,,,
"""
EXISTING = "Email,Phone\nexisting@example.com,+15550000001\nother@example.com,+15550000002\n"


def setup_properties(database_url: str) -> None:
    from mdpipe.db.engine import open_engine

    engine = open_engine(database_url)
    add_property(engine, "default", "tier", "number")
    add_property(engine, "default", "member since", "date")
    add_property(engine, "default", "vip", "boolean")


def test_a_file_with_every_kind_of_problem(database_url, engine, write_csv):
    setup_properties(database_url)
    import_contacts(write_csv(EXISTING, "existing.csv"), database_url=database_url)
    summary = import_contacts(write_csv(EVERY_PROBLEM), database_url=database_url)

    assert stored_errors(engine, summary.run_id) == [
        (3, "Email", "invalid-email"),
        (4, "Phone", "invalid-phone"),
        (5, None, "missing-contact-method"),
        (6, "Member Since", "type-mismatch"),
        (6, "Tier", "type-mismatch"),
        (6, "VIP", "type-mismatch"),
        (7, "Email", "duplicate-in-file"),
        (8, "Phone", "duplicate-in-file"),
        (9, None, "wrong-column-count"),
        (10, "Email", "invalid-email"),
        (10, "Phone", "invalid-phone"),
        (11, "Email", "conflicting-contacts"),
        (12, "Phone", "duplicate-existing"),
    ]
    assert (
        summary.processed,
        summary.imported,
        summary.updated,
        summary.skipped,
        summary.failed,
    ) == (11, 1, 0, 3, 7)
    assert summary.reasons == {
        "conflicting-contacts": 1,
        "duplicate-existing": 1,
        "duplicate-in-file": 2,
        "invalid-email": 2,
        "invalid-phone": 2,
        "missing-contact-method": 1,
        "type-mismatch": 1,
        "wrong-column-count": 1,
    }
    assert query(
        engine, "SELECT first_name, email, phone FROM contacts WHERE first_name = 'Ann'"
    ) == [("Ann", "ann@example.com", "+15551234567")]
    exported = export_contacts(engine, "default", None)
    ann = exported.filter(exported["first_name"] == "Ann").to_dicts()[0]
    assert (ann["tier"], ann["member since"], ann["vip"]) == ("3", "2024-01-31", "true")


def test_rerunning_the_same_file_creates_nothing(database_url, engine, write_csv):
    path = write_csv("Email,Phone\na@example.com,+15551230001\nb@example.com,+15551230002\n")
    first = import_contacts(path, database_url=database_url)
    second = import_contacts(path, database_url=database_url)
    assert (first.imported, second.imported, second.skipped) == (2, 0, 2)
    assert second.reasons == {"duplicate-existing": 2}
    assert query(engine, "SELECT count(*) FROM contacts") == [(2,)]


def test_emails_are_unique_case_insensitively(database_url, engine, write_csv):
    import_contacts(write_csv("Email\nAnn@Example.com\n", "a.csv"), database_url=database_url)
    summary = import_contacts(
        write_csv("Email\nann@EXAMPLE.com\n", "b.csv"), database_url=database_url
    )
    assert summary.reasons == {"duplicate-existing": 1}
    assert query(engine, "SELECT email FROM contacts") == [("Ann@example.com",)]


def test_update_overwrites_non_empty_cells_and_merges_properties(database_url, engine, write_csv):
    add_property(engine, "default", "tier", "number")
    add_property(engine, "default", "note", "text")
    import_contacts(
        write_csv(
            "First Name,Last Name,Email,Phone,Tier,Note\nAnn,Lee,ann@example.com,,1,keep me\n",
            "a.csv",
        ),
        database_url=database_url,
    )
    summary = import_contacts(
        write_csv(
            "First Name,Last Name,Email,Phone,Tier,Note\nAnnie,,ANN@example.com,+15551234567,2,\n",
            "b.csv",
        ),
        database_url=database_url,
        options=ImportOptions(on_duplicate="update"),
    )
    assert (summary.updated, summary.imported) == (1, 0)
    row = export_contacts(engine, "default", None).to_dicts()
    assert row == [
        {
            "first_name": "Annie",
            "last_name": "Lee",
            "email": "ANN@example.com",
            "phone": "+15551234567",
            "company": None,
            "tier": "2",
            "note": "keep me",
        }
    ]
    assert query(
        engine, "SELECT count(*) FROM contacts WHERE updated_run_id = :r", r=summary.run_id
    ) == [(1,)]


def test_two_rows_matching_one_contact_update_it_once(database_url, write_csv):
    import_contacts(
        write_csv("Email,Phone\nann@example.com,+15551234567\n", "a.csv"), database_url=database_url
    )
    summary = import_contacts(
        write_csv("Email,Phone\nann@example.com,\n,+15551234567\n", "b.csv"),
        database_url=database_url,
        options=ImportOptions(on_duplicate="update"),
    )
    assert (summary.updated, summary.skipped) == (1, 1)
    assert summary.reasons == {"duplicate-in-file": 1}


def test_dry_run_writes_nothing_and_reports_what_would_happen(database_url, engine, write_csv):
    path = write_csv("Email\na@example.com\nbad\n")
    summary = import_contacts(path, database_url=database_url, options=ImportOptions(dry_run=True))
    assert (summary.run_id, summary.imported, summary.failed, summary.dry_run) == (None, 1, 1, True)
    assert query(engine, "SELECT count(*) FROM contacts") == [(0,)]
    assert query(engine, "SELECT count(*) FROM import_runs") == [(0,)]
    assert query(engine, "SELECT count(*) FROM workspaces") == [(0,)]


def test_default_region_normalises_and_counts(database_url, engine, write_csv):
    path = write_csv("Phone\n(415) 555-0132\n+14155550133\n")
    summary = import_contacts(
        path, database_url=database_url, options=ImportOptions(default_region="US")
    )
    assert (summary.imported, summary.normalised_phones) == (2, 1)
    assert query(engine, "SELECT phone FROM contacts ORDER BY phone") == [
        ("+14155550132",),
        ("+14155550133",),
    ]


def test_workspaces_are_separate(database_url, engine, write_csv):
    path = write_csv("Email\na@example.com\n")
    import_contacts(path, database_url=database_url, options=ImportOptions(workspace="one"))
    summary = import_contacts(
        path, database_url=database_url, options=ImportOptions(workspace="two")
    )
    assert summary.imported == 1
    assert query(engine, "SELECT count(*) FROM contacts") == [(2,)]


def test_errors_csv_round_trips(database_url, engine, write_csv, tmp_path):
    path = write_csv(
        "Name,Email,Phone,Note\n"
        'Ann,ann@example,+1 555 123 4567,=HYPERLINK("x")\n'
        "Bob,bob@example.com,+15551230000,ok\n"
        'Cy,"",-5,@SUM(A1)\n'
    )
    errors_out = tmp_path / "errors.csv"
    summary = import_contacts(
        path, database_url=database_url, options=ImportOptions(errors_out=str(errors_out))
    )
    assert summary.failed == 2
    with errors_out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["row"] for r in rows] == ["2", "4"]
    assert rows[0]["Phone"] == "+1 555 123 4567"
    assert rows[0]["Note"] == '\'=HYPERLINK("x")'
    assert rows[1]["Phone"] == "-5"
    assert rows[1]["Note"] == "'@SUM(A1)"
    assert rows[0]["reason"] == "invalid-email" and "Email" in rows[0]["detail"]
    # fixed and re-uploaded as it is: the extra columns are reported as ignored
    fixed = errors_out.read_text(encoding="utf-8").replace("ann@example,", "ann@example.com,")
    again = import_contacts(write_csv(fixed, "fixed.csv"), database_url=database_url)
    assert again.imported == 1
    assert {"row", "reason", "detail", "Note", "Name"} <= set(again.ignored_columns)


def test_a_whole_file_refusal_writes_nothing(database_url, engine, write_csv):
    with pytest.raises(FileRefused, match="CSV file is too large"):
        import_contacts(
            write_csv("Email\na@example.com\n"),
            database_url=database_url,
            options=ImportOptions(max_bytes=5),
        )
    assert query(engine, "SELECT count(*) FROM contacts") == [(0,)]


def test_a_file_without_email_or_phone_columns_is_a_mapping_error(database_url, write_csv):
    with pytest.raises(MappingError, match="no column maps to email or phone"):
        import_contacts(write_csv("Name,Town\nAnn,Leeds\n"), database_url=database_url)


def test_the_run_record_keeps_counts_options_and_sha(database_url, engine, write_csv):
    summary = import_contacts(write_csv("Email\na@example.com\nbad\n"), database_url=database_url)
    (status, processed, failed, sha, reasons, rows_done) = query(
        engine,
        "SELECT status, processed, failed, file_sha256, reasons, rows_done FROM import_runs WHERE id = :i",
        i=summary.run_id,
    )[0]
    assert (status, processed, failed, len(sha), rows_done) == ("completed", 2, 1, 64, 1)
    assert (json.loads(reasons) if isinstance(reasons, str) else reasons) == {"invalid-email": 1}


def test_crm_exports_import_with_auto_mapping_alone(database_url, engine):
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    google = import_contacts(examples / "google_contacts.csv", database_url=database_url)
    assert (google.imported, google.failed) == (3, 0)
    assert list(google.mapped_columns.items()) == [  # in the file's order, to review
        ("First Name", "first_name"),
        ("Last Name", "last_name"),
        ("Organization Name", "company"),
        ("E-mail 1 - Value", "email"),
        ("Phone 1 - Value", "phone"),
    ]
    assert "| E-mail 1 - Value | email |" in summary_markdown(google)
    outlook = import_contacts(examples / "outlook_contacts.csv", database_url=database_url)
    assert (outlook.imported, outlook.failed) == (2, 0)
    assert query(engine, "SELECT phone, company FROM contacts WHERE last_name = 'Fischer'") == [
        ("+4915123456789", "Fischer GmbH")
    ]
    assert query(engine, "SELECT email FROM contacts WHERE last_name = 'Nguyen'") == [
        ("tom.nguyen@example.org",)
    ]
    # Google's "a ::: b" cell: the first number
    assert query(engine, "SELECT phone FROM contacts WHERE last_name = 'Garcia'") == [
        ("+14155550132",)
    ]
    german = import_contacts(
        examples / "outlook_de_contacts.csv",
        database_url=database_url,
        options=ImportOptions(default_region="DE"),
    )
    # Lena Fischer came with the Outlook export already
    assert (german.imported, german.skipped, german.failed) == (2, 1, 0)
    assert german.reasons == {"duplicate-existing": 1}
    assert query(engine, "SELECT phone, company FROM contacts WHERE last_name = 'Demir'") == [
        ("+491701234567", None)
    ]


def test_the_example_mapping_file_imports_its_export(database_url):
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    summary = import_contacts(
        examples / "crm_export.csv",
        database_url=database_url,
        options=ImportOptions(mapping_file=str(examples / "crm_mapping.yaml")),
    )
    assert (summary.imported, summary.failed, summary.ignored_columns) == (2, 0, ["Internal Notes"])


def test_a_number_moved_by_an_update_is_free_for_a_later_row(database_url, engine, write_csv):
    """Ann moves from +1...0001 to +1...0002; Bob, later in the file, now has +1...0001."""
    import_contacts(
        write_csv("Email,Phone\nann@example.com,+15551230001\n", "a.csv"), database_url=database_url
    )
    moved = write_csv(
        "Email,Phone\nann@example.com,+15551230002\nbob@example.com,+15551230001\n", "b.csv"
    )
    options = ImportOptions(on_duplicate="update")
    summary = import_contacts(moved, database_url=database_url, options=options)
    assert (summary.updated, summary.imported, summary.skipped) == (1, 1, 0)
    assert query(engine, "SELECT email, phone FROM contacts ORDER BY email") == [
        ("ann@example.com", "+15551230002"),
        ("bob@example.com", "+15551230001"),
    ]
    again = import_contacts(moved, database_url=database_url, options=options)
    assert (again.imported, again.updated) == (0, 2)


def test_a_semicolon_separated_excel_export_imports_and_its_errors_csv_reimports(
    database_url, engine, write_csv, tmp_path
):
    """Excel in many locales saves "CSV" with semicolons; the error CSV comes back with commas."""
    path = write_csv(
        "Vorname;Nachname;E-Mail;Mobiltelefon;Firma\r\n"
        'Lena;Fischer;lena@example.de;+49 151 23456789;"Fischer; Söhne GmbH"\r\n'
        "Jonas;Weber;jonas@example;+49 30 901820;Weber AG\r\n",
        name="export.csv",
    )
    mapping = {
        "Vorname": "first_name",
        "Nachname": "last_name",
        "Mobiltelefon": "phone",
        "Firma": "company",
    }
    errors_csv = tmp_path / "errors.csv"
    summary = import_contacts(
        path,
        database_url=database_url,
        options=ImportOptions(mapping=mapping, errors_out=str(errors_csv)),
    )
    assert (summary.imported, summary.failed, summary.reasons) == (1, 1, {"invalid-email": 1})
    assert query(engine, "SELECT email, phone, company FROM contacts") == [
        ("lena@example.de", "+4915123456789", "Fischer; Söhne GmbH")
    ]
    with errors_csv.open(newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle))[:5] == [
            "Vorname", "Nachname", "E-Mail", "Mobiltelefon", "Firma"
        ]  # fmt: skip
    errors_csv.write_text(
        errors_csv.read_text(encoding="utf-8").replace("jonas@example", "jonas@example.com"),
        encoding="utf-8",
    )
    again = import_contacts(
        errors_csv, database_url=database_url, options=ImportOptions(mapping=mapping)
    )
    assert (again.imported, again.failed) == (1, 0)


SMALL_FILE_INTO_A_LARGE_WORKSPACE = """Email,Phone,Company
NEW@example.com,+15557770001,new
STORED7@EXAMPLE.COM,,by email in another case
,+15550000012,by phone
stored20@example.com,+15550000030,conflict
stored40@example.com,+15557770002,moves its phone
,+15550000040,the phone row 6 moved away
stored50@example.com,+15550000050,by both
"""


@pytest.mark.parametrize("policy", ["skip", "update"])
def test_a_small_file_into_a_large_workspace_plans_alike_whichever_side_matches(
    database_url, engine, write_csv, monkeypatch, policy
):
    """The planner reads either the whole workspace's keys or, for a file much smaller than
    the workspace, only the contacts the database matches to the file's keys: same plan."""
    from mdpipe.db import merge

    stored = "Email,Phone\n" + "".join(
        f"stored{i}@example.com,+155500000{i:02d}\n" for i in range(60)
    )
    outcomes = []
    for workspace, most_keys in (("whole", 0), ("matched", 10**9)):
        monkeypatch.setattr(merge, "MOST_KEYS_TO_LOOK_UP", most_keys)
        options = ImportOptions(workspace=workspace, on_duplicate=policy)
        import_contacts(write_csv(stored, "stored.csv"), database_url=database_url, options=options)
        summary = import_contacts(
            write_csv(SMALL_FILE_INTO_A_LARGE_WORKSPACE),
            database_url=database_url,
            options=options,
        )
        contacts = query(
            engine,
            "SELECT c.email, c.phone, c.company FROM contacts c JOIN workspaces w "
            "ON w.id = c.workspace_id WHERE w.name = :w ORDER BY c.email, c.phone",
            w=workspace,
        )
        outcomes.append((summary.as_json() | {"run_id": None}, contacts, summary.run_id))
    (whole, whole_contacts, whole_run), (matched, matched_contacts, matched_run) = outcomes
    assert matched == whole
    assert matched_contacts == whole_contacts
    assert stored_errors(engine, matched_run) == stored_errors(engine, whole_run)
    expected = {"skip": (1, 0), "update": (2, 4)}[policy]
    assert (whole["imported"], whole["updated"]) == expected
    assert whole["reasons"].get("conflicting-contacts") == 1


def test_cells_holding_several_values_keep_the_first(database_url, engine, write_csv):
    """Google Contacts joins several values of one field with ' ::: ' in one cell."""
    path = write_csv(
        "Given Name,E-mail 1 - Value,Phone 1 - Value\n"
        "Maria,maria@example.com ::: m.garcia@example.com,+1 415-555-0132 ::: +1 415-555-0199\n"
        "Tom, ::: tom@example.org,\n"
        "Eve,not-an-email ::: eve@example.com,\n"
    )
    summary = import_contacts(path, database_url=database_url)
    assert (summary.imported, summary.failed) == (2, 1)
    assert stored_errors(engine, summary.run_id) == [(4, "E-mail 1 - Value", "invalid-email")]
    assert query(engine, "SELECT first_name, email, phone FROM contacts ORDER BY first_name") == [
        ("Maria", "maria@example.com", "+14155550132"),
        ("Tom", "tom@example.org", None),
    ]
