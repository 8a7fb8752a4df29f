"""Normalising and checking cells: phones, emails, property types, the Pandera schema."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
import pytest

from mdpipe.errors import SetupError
from mdpipe.validate import (
    check_distinct,
    check_region,
    normalise_emails,
    normalise_phones,
    typed_property,
)
from schemas.contacts import contact_schema


def phones(values, region=None):
    result = normalise_phones(pl.Series(values, dtype=pl.String), default_region=region)
    return result["normalised"].to_list()


def test_phones_are_stripped_and_stored_as_e164():
    assert phones(["+1 (555) 123-4567", "+44 20 7946 0958", "+1.415.555.0132", None]) == [
        "+15551234567",
        "+442079460958",
        "+14155550132",
        None,
    ]


def test_the_products_own_example_is_accepted_although_555_is_unassigned():
    assert phones(["+15551234567"]) == ["+15551234567"]


@pytest.mark.parametrize(
    "bad",
    ["5551234567", "+1234", "+99912345678", "+1-800-FLOWERS", "+", "+1234567890123456", "abc"],
)
def test_bad_phones_are_rejected(bad):
    assert phones([bad]) == [None]


def test_default_region_reads_national_numbers():
    assert phones(["(415) 555-0132", "020 7946 0958"], region="US")[0] == "+14155550132"
    assert phones(["020 7946 0958"], region="GB") == ["+442079460958"]


def test_phone_problems_say_why():
    result = normalise_phones(
        pl.Series(["5551234567", "+1234", "1.55512E+10", "4.15555e11"]), default_region="US"
    )
    assert result["normalised"].to_list() == ["+15551234567", None, None, None]
    assert "possible" in result["problem"][1]
    assert all("scientific notation" in problem for problem in result["problem"][2:])
    unregioned = normalise_phones(pl.Series(["5551234567"]), default_region=None)
    assert "--default-region" in unregioned["problem"][0]


def test_emails_are_normalised_and_checked_without_network():
    result = normalise_emails(
        pl.Series(["Ann@Example.COM", "no-at-sign", "x@localhost", "b@no-such-domain-zz9.com"])
    )
    assert result["normalised"].to_list() == [
        "Ann@example.com",
        None,
        None,
        "b@no-such-domain-zz9.com",
    ]
    assert result["problem"][1] is not None


def test_distinct_values_are_checked_once_and_joined_back_in_order():
    values = ["+15551234567", "bad", "+15551234567", None, "bad"]
    assert phones(values) == ["+15551234567", None, "+15551234567", None, None]


def test_the_library_check_runs_once_per_distinct_value_the_fast_path_left():
    checked: list[str] = []

    def library(value: str) -> tuple[str | None, str | None]:
        checked.append(value)
        return (value.upper(), None) if value.startswith("ok") else (None, f"{value} is bad")

    def fast(cells: pl.Series) -> pl.DataFrame:  # decides the cells that start with "fast"
        decided = pl.col("value").str.starts_with("fast").fill_null(False)
        return cells.to_frame("value").select(
            pl.when(decided).then(pl.col("value") + "!").alias("normalised"),
            pl.lit(None, dtype=pl.String).alias("problem"),
            decided.alias("decided"),
        )

    values = pl.Series(["ok1", "fast1", "x", None, "ok1", "x", "fast1", "ok2"])
    result = check_distinct(values, library, fast=fast)
    assert sorted(checked) == ["ok1", "ok2", "x"]
    assert result.rows() == [
        ("OK1", None),
        ("fast1!", None),
        (None, "x is bad"),
        (None, None),
        ("OK1", None),
        (None, "x is bad"),
        ("fast1!", None),
        ("OK2", None),
    ]
    checked.clear()
    assert check_distinct(values, library)["normalised"].to_list()[4] == "OK1"
    assert sorted(checked) == ["fast1", "ok1", "ok2", "x"]


@pytest.mark.parametrize(
    ("kind", "cells", "expected"),
    [
        ("number", ["-12.5", "3", "1e5", "12,5", "abc"], [-12.5, 3.0, None, None, None]),
        ("boolean", ["TRUE", "no", "1", "0", "maybe"], [True, False, True, False, None]),
        (
            "date",
            ["2025-06-01", "2025-13-01", "01/06/2025", "2025-6-1"],
            ["2025-06-01", None, None, None],
        ),
        ("text", ["anything"], ["anything"]),
    ],
)
def test_property_types(kind, cells, expected):
    frame = pl.DataFrame({"v": cells}).select(typed_property(pl.col("v"), kind))
    values = frame["v"].cast(pl.String).to_list() if kind == "date" else frame["v"].to_list()
    assert values == expected


def test_the_schema_catches_bad_values_on_a_collected_frame():
    schema = contact_schema({"tier": "number"})
    frame = pl.DataFrame(
        {
            "row": [2, 3],
            "first_name": [None, None],
            "last_name": [None, None],
            "company": [None, None],
            "email": ["bad", None],
            "email_normalised": [None, None],
            "email__problem": ["nope", None],
            "phone": [None, None],
            "phone_e164": [None, None],
            "phone__problem": [None, None],
            "tier": ["x", None],
            "tier__typed": [None, None],
            "tier__problem": ["not a number", None],
        },
        schema_overrides={
            c: pl.String
            for c in [
                "first_name",
                "last_name",
                "company",
                "email_normalised",
                "phone",
                "phone_e164",
                "phone__problem",
                "tier__typed",
            ]
        }
        | {"tier__typed": pl.Float64, "row": pl.Int64},
    )
    with pytest.raises(pa.errors.SchemaErrors) as caught:
        schema.validate(frame, lazy=True)
    checks = set(caught.value.failure_cases["check"].to_list())
    assert checks == {"invalid-email", "type-mismatch", "missing-contact-method"}


def test_an_unknown_default_region_is_refused_before_any_row():
    assert check_region("gb") == "GB"
    assert check_region(None) is None
    for unknown in ("ZZ", "usa", ""):
        with pytest.raises(SetupError, match="--default-region"):
            check_region(unknown)
