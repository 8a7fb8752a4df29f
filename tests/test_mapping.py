"""Column mapping: exact names, synonyms, CRM exports, overrides and their errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mdpipe.errors import MappingError
from mdpipe.mapping import CONTACT_FIELDS, load_mapping_file, match_columns, parse_map_options

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def mapped(headers, overrides=None, fields=CONTACT_FIELDS):
    mapping = match_columns(headers, fields=fields, overrides=overrides)
    return {field: headers[i] for field, i in mapping.fields.items()}, list(mapping.ignored)


def test_exact_names_map_ignoring_case_spaces_and_punctuation():
    fields, ignored = mapped(["FIRST_NAME", "last name", "E-Mail", "phone", "Company", "Notes"])
    assert fields == {
        "first_name": "FIRST_NAME",
        "last_name": "last name",
        "email": "E-Mail",
        "phone": "phone",
        "company": "Company",
    }
    assert ignored == ["Notes"]


def test_a_repeated_or_empty_header_is_named_with_its_position():
    """Two columns called Email: the first maps, the report says which one was left out."""
    headers = ["Email", "Phone", "Email", ""]
    mapping = match_columns(headers, fields=CONTACT_FIELDS)
    assert mapping.fields == {"email": 0, "phone": 1}
    assert mapping.ignored == ("Email (column 3)", "(column 4)")


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Phone Number", "phone"),
        ("Mobile", "phone"),
        ("Cell", "phone"),
        ("E-mail", "email"),
        ("Email Address", "email"),
        ("Given Name", "first_name"),
        ("Surname", "last_name"),
        ("Organization", "company"),
    ],
)
def test_common_synonyms_map(header, field):
    assert mapped([header])[0] == {field: header}


def _headers(name: str) -> list[str]:
    with (EXAMPLES / name).open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def test_google_contacts_export_maps_without_help():
    fields, ignored = mapped(_headers("google_contacts.csv"))
    assert fields == {
        "first_name": "First Name",
        "last_name": "Last Name",
        "email": "E-mail 1 - Value",
        "phone": "Phone 1 - Value",
        "company": "Organization Name",
    }
    assert "E-mail 2 - Value" in ignored and "Phone 2 - Value" in ignored


def test_outlook_export_prefers_the_mobile_number():
    fields, ignored = mapped(_headers("outlook_contacts.csv"))
    assert fields["phone"] == "Mobile Phone"
    assert fields["email"] == "E-mail Address"
    assert fields["company"] == "Company"
    assert {"Business Phone", "Home Phone", "Primary Phone"} <= set(ignored)


def test_a_german_outlook_export_maps_without_help():
    with (EXAMPLES / "outlook_de_contacts.csv").open(newline="", encoding="utf-8") as handle:
        headers = next(csv.reader(handle, delimiter=";"))
    fields, ignored = mapped(headers)
    assert fields == {
        "first_name": "Vorname",
        "last_name": "Nachname",
        "email": "E-Mail-Adresse",
        "phone": "Mobiltelefon",
        "company": "Firma",
    }
    assert {"Telefon geschäftlich", "Telefon privat", "Weitere Vornamen"} <= set(ignored)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            ["Prénom", "Nom", "Société", "Adresse de messagerie", "Tél. mobile"],
            ["first_name", "last_name", "company", "email", "phone"],
        ),
        (
            ["Nombre", "Apellidos", "Compañía", "Correo electrónico", "Teléfono móvil"],
            ["first_name", "last_name", "company", "email", "phone"],
        ),
        (
            ["Voornaam", "Achternaam", "Bedrijf", "E-mailadres", "Mobiele telefoon"],
            ["first_name", "last_name", "company", "email", "phone"],
        ),
        # accents typed as a letter plus a combining mark (NFD, as macOS file names are)
        (["Pre\u0301nom", "Te\u0301le\u0301phone"], ["first_name", "phone"]),
    ],
)
def test_localised_headers_map(headers, expected):
    fields, ignored = mapped(headers)
    assert [next(f for f, h in fields.items() if h == header) for header in headers] == expected
    assert ignored == []


def test_an_english_phone_column_wins_over_a_localised_one():
    fields, _ = mapped(["Email", "Telefon", "Mobile Phone"])
    assert fields["phone"] == "Mobile Phone"


def test_hubspot_export_maps():
    headers = [
        "Record ID",
        "First Name",
        "Last Name",
        "Email",
        "Phone Number",
        "Company Name",
        "Lead Status",
    ]
    fields, ignored = mapped(headers)
    assert set(fields) == {"first_name", "last_name", "email", "phone", "company"}
    assert ignored == ["Record ID", "Lead Status"]


def test_overrides_win_and_can_ignore_a_column():
    fields, ignored = mapped(["Work", "Email", "Cell"], overrides={"Work": "phone", "Cell": None})
    assert fields == {"phone": "Work", "email": "Email"}
    assert ignored == ["Cell"]


def test_custom_properties_map_by_name():
    fields, _ = mapped(["Email", "Loyalty Tier"], fields={**CONTACT_FIELDS, "loyalty_tier": ()})
    assert fields["loyalty_tier"] == "Loyalty Tier"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"A": "email", "B": "email"}, "both mapped to 'email'"),
        ({"A": "shoe_size"}, "unknown field 'shoe_size'"),
        ({"Missing": "email"}, "not in the file"),
    ],
)
def test_bad_overrides_are_clear_errors(overrides, message):
    with pytest.raises(MappingError, match=message):
        mapped(["A", "B"], overrides=overrides)


def test_map_options_and_mapping_files(tmp_path):
    assert parse_map_options(["Cell Number=phone", "Notes="]) == {
        "Cell Number": "phone",
        "Notes": None,
    }
    with pytest.raises(MappingError):
        parse_map_options(["no equals sign"])
    yaml_file = tmp_path / "m.yaml"
    yaml_file.write_text("columns:\n  Work: phone\n  Notes: null\n")
    assert load_mapping_file(yaml_file) == {"Work": "phone", "Notes": None}
    json_file = tmp_path / "m.json"
    json_file.write_text('{"Work": "phone"}')
    assert load_mapping_file(json_file) == {"Work": "phone"}
    json_file.write_text("[1, 2]")
    with pytest.raises(MappingError, match="expected a mapping"):
        load_mapping_file(json_file)
