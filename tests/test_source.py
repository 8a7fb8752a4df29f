"""The source stage: file-level refusals and row structure, on tiny files."""

from __future__ import annotations

import pytest

from mdpipe.config import Limits
from mdpipe.errors import FileRefused
from mdpipe.source import check_source, read_cells, read_source

LIMITS = Limits()


def errors_of(source) -> list[tuple[int, str]]:
    return [(row, reason) for row, _, _, reason, _ in source.errors.iter_rows()]


def test_crlf_quoted_commas_and_newlines_parse(write_csv):
    path = write_csv('name,note\r\n"Smith, Ann","line one\r\nline two"\r\nBob,"say ""hi"""\r\n')
    source = read_source(path, limits=LIMITS)
    assert source.headers == ("name", "note")
    assert source.cells.rows() == [
        ("Smith, Ann", "line one\r\nline two", 2),
        ("Bob", 'say "hi"', 3),
    ]
    assert source.errors.height == 0


def test_ragged_rows_are_row_errors_numbered_as_a_spreadsheet(write_csv):
    path = write_csv('a,b,c\n1,2,3\n4,5\n"x\ny",,\n6,7,8,9\n\n10,11,12\n')
    source = read_source(path, limits=LIMITS)
    assert errors_of(source) == [(3, "wrong-column-count"), (5, "wrong-column-count")]
    assert source.cells["row"].to_list() == [2, 3, 4, 5, 7]
    assert source.errors["detail"].to_list() == [
        "expected 3 cells like the header, found 2",
        'expected 3 cells like the header, found 4; cells past the header: ["9"]',
    ]


def test_trailing_separator_counts_as_an_extra_cell(write_csv):
    source = read_source(write_csv("a,b\n1,2,\n3,4\n"), limits=LIMITS)
    assert errors_of(source) == [(2, "wrong-column-count")]


def test_stray_quote_inside_a_cell_falls_back_to_the_exact_parser(write_csv):
    source = read_source(write_csv("a,b\n5'11\",2\n3,4\n"), limits=LIMITS)
    assert source.cells.select("c0", "c1").rows() == [("5'11\"", "2"), ("3", "4")]


@pytest.mark.parametrize(
    ("content", "separator"),
    [
        ('"Smith; Ann",b;c\n"x;y",2;3\n', ","),  # separators inside quotes do not count
        ('Name;"Email, work";Phone\n"Lovelace, Ada";ada@example.com;+15551234567\n', ";"),
        ("Name\tEmail\tPhone\nAda\tada@example.com\t+15551234567\n", "\t"),
        ("Email\nada@example.com\n", ","),
    ],
)
def test_the_separator_is_read_off_the_header_row(write_csv, content, separator):
    source = read_source(write_csv(content), limits=LIMITS)
    assert source.separator == separator
    header_cells = len(source.headers)
    assert all(len(row) == header_cells + 1 for row in source.cells.rows())  # + the row column
    assert source.errors.height == 0


def test_a_semicolon_file_keeps_its_row_errors_and_quoted_cells(write_csv):
    path = write_csv('Name;Email\n"Lovelace; Ada";ada@example.com\nBob\n"a\nb";c;d\n')
    source = read_source(path, limits=LIMITS)
    assert source.cells.filter(source.cells["row"] == 2).row(0)[:2] == (
        "Lovelace; Ada",
        "ada@example.com",
    )
    assert errors_of(source) == [(3, "wrong-column-count"), (4, "wrong-column-count")]
    assert source.errors["detail"].to_list()[1].endswith('cells past the header: ["d"]')


def test_bom_is_accepted(write_csv):
    source = read_source(write_csv(b"\xef\xbb\xbfemail\nann@example.com\n"), limits=LIMITS)
    assert source.headers == ("email",)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"email\nann@example.com\nb\xe9a@example.com\n", "byte 0xe9 at byte offset 23 (line 3)"),
        (b"\xff\xfee\x00m\x00", "UTF-16"),
        (b"", "empty"),
        (b"\n\n", "header"),
        (b"email,phone\n", "no data rows"),
        (b"email,phone\n\n\n", "no data rows"),
        (b'email\nok\n"unterminated\nmore\n', "opened on line 3"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(write_csv, content, needle):
    with pytest.raises(FileRefused, match=r"input\.csv") as caught:
        read_source(write_csv(content), limits=LIMITS)
    assert needle in str(caught.value)


def test_non_csv_extension_is_refused(write_csv):
    with pytest.raises(FileRefused, match="only CSV files"):
        read_source(write_csv("a\n1\n", name="contacts.xlsx"), limits=LIMITS)


def test_size_limit_uses_the_products_wording(write_csv):
    path = write_csv("email\n" + "ann@example.com\n" * 100)
    with pytest.raises(FileRefused, match="CSV file is too large"):
        read_source(path, limits=Limits(max_rows=0, max_bytes=100))
    assert read_source(path, limits=Limits(max_rows=0, max_bytes=0)).rows_read == 100


def test_row_limit_counts_data_rows_not_blank_lines(write_csv):
    path = write_csv("email\n" + "a@example.com\n\n" * 3)
    assert read_source(path, limits=Limits(max_rows=3)).rows_read == 3
    with pytest.raises(FileRefused, match="too many rows: 3 data rows"):
        read_source(path, limits=Limits(max_rows=2))


def test_limits_come_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("MDPIPE_MAX_ROWS", "0")
    monkeypatch.setenv("MDPIPE_MAX_BYTES", "123")
    assert Limits.resolve() == Limits(max_rows=0, max_bytes=123)
    assert Limits.resolve(max_rows=7) == Limits(max_rows=7, max_bytes=123)
    monkeypatch.setenv("MDPIPE_MAX_ROWS", "lots")
    with pytest.raises(ValueError, match="MDPIPE_MAX_ROWS"):
        Limits.resolve()


@pytest.mark.parametrize(
    "content",
    [
        "a,b,c\n1,2,3\n4,5\n\n7,8,9\n",  # Polars parses it
        "a,b,c\n5'11\",2,3\n4,5\n\n7,8,9\n",  # a stray quote: the csv module parses it
    ],
)
def test_only_the_chosen_columns_are_parsed_and_rows_keep_their_numbers(write_csv, content):
    checked = check_source(write_csv(content), limits=LIMITS)
    source = read_cells(checked, columns=[2, 0])
    assert source.cells.columns == ["c0", "c2", "row"]
    assert source.cells["row"].to_list() == [2, 3, 5]
    assert source.cells["c2"].to_list() == ["3", "", "9"]
    assert errors_of(source) == [(3, "wrong-column-count")]
