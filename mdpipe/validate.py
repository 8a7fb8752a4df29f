"""Normalise and check cells: phones, emails, typed properties; run a Pandera schema.

The expensive checks (phonenumbers, email-validator) run once per distinct
value and are joined back; everything else is a Polars expression. A Pandera
schema from `schemas/` then declares which rows are valid, and its failure
cases become the row-error frame.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import pandera.polars as pa
import phonenumbers
import polars as pl
from email_validator import EmailNotValidError, validate_email

from mdpipe.errors import ERROR_SCHEMA, Reason, empty_errors
from mdpipe.mapping import ColumnMapping
from mdpipe.source import ROW, Source, cell_column

E164 = re.compile(r"^\+\d{2,15}$")
PHONE_PUNCTUATION = r"[\s\-.()\u00a0]"
PROBLEM = "__problem"

Verdict = tuple[str | None, str | None]  # (normalised value, problem)


def problem_column(column: str) -> str:
    """The name of the column holding why `column`'s cell is invalid."""
    return f"{column}{PROBLEM}"


def prepare_fields(source: Source, mapping: ColumnMapping, fields: Sequence[str]) -> pl.DataFrame:
    """`row` plus one trimmed text column per field (null where empty or unmapped)."""
    columns = [pl.col(ROW)]
    for field in fields:
        if field in mapping.fields:
            cell = pl.col(cell_column(mapping.fields[field])).str.strip_chars()
            columns.append(pl.when(cell != "").then(cell).alias(field))
        else:
            columns.append(pl.lit(None, dtype=pl.String).alias(field))
    return source.cells.select(columns)


def check_distinct(values: pl.Series, check: Callable[[str], Verdict]) -> pl.DataFrame:
    """`check` run once per distinct non-null value, joined back: (normalised, problem) per cell."""
    distinct = values.drop_nulls().unique()
    verdicts = [check(value) for value in distinct.to_list()]
    lookup = pl.DataFrame(
        {
            "value": distinct,
            "normalised": [v[0] for v in verdicts],
            "problem": [v[1] for v in verdicts],
        },
        schema={"value": pl.String, "normalised": pl.String, "problem": pl.String},
    )
    return (
        values.to_frame("value")
        .join(lookup, on="value", how="left", maintain_order="left")
        .drop("value")
    )


def phone_verdict(default_region: str | None) -> Callable[[str], Verdict]:
    """The check for one phone cell already stripped of spaces, dashes, dots and parentheses."""

    def verdict(number: str) -> Verdict:
        if number.startswith("+"):
            if not E164.match(number):
                return None, "not E.164: expected + then 2 to 15 digits"
            region = None
        elif not number.isdigit():
            return None, "not a phone number: expected + then 2 to 15 digits"
        elif not default_region:
            return (
                None,
                "no country code: write it as +<country code><number> or pass --default-region",
            )
        else:
            region = default_region
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException as exc:
            return None, f"not a phone number: {exc._msg}"
        if not phonenumbers.is_possible_number(parsed):
            return None, f"not a possible number for country code +{parsed.country_code}"
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if not E164.match(e164):
            return None, "not E.164: expected + then 2 to 15 digits"
        return e164, None

    return verdict


def normalise_phones(cells: pl.Series, *, default_region: str | None) -> pl.DataFrame:
    """E.164 form (`normalised`) or why not (`problem`) for each phone cell."""
    stripped = cells.str.replace_all(PHONE_PUNCTUATION, "")
    return check_distinct(
        stripped, phone_verdict(default_region.upper() if default_region else None)
    )


def email_verdict(address: str) -> Verdict:
    """The normalised address, or email-validator's reason; never a network call."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, str(exc)
    return checked.normalized, None


def normalise_emails(cells: pl.Series) -> pl.DataFrame:
    """Normalised address (`normalised`) or why not (`problem`) for each email cell."""
    return check_distinct(cells, email_verdict)


NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
PROPERTY_TYPES = ("text", "number", "boolean", "date")
PROPERTY_PROBLEMS = {
    "number": "expected a number such as -12.5",
    "boolean": "expected true/false, yes/no or 1/0",
    "date": "expected a date as YYYY-MM-DD",
}


def typed_property(cell: pl.Expr, kind: str) -> pl.Expr:
    """The cell as its property type; null where it does not parse (or is empty)."""
    if kind == "number":
        return pl.when(cell.str.contains(NUMBER)).then(cell.cast(pl.Float64, strict=False))
    if kind == "boolean":
        return cell.str.to_lowercase().replace_strict(
            BOOLEAN_WORDS, default=None, return_dtype=pl.Boolean
        )
    if kind == "date":
        return pl.when(cell.str.contains(r"^\d{4}-\d{2}-\d{2}$")).then(
            cell.str.to_date("%Y-%m-%d", strict=False)
        )
    return cell


def validate_frame(
    frame: pl.DataFrame,
    schema: pa.DataFrameSchema,
    *,
    headers: Mapping[str, str],
    details: Mapping[str, str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(valid rows, row errors): `schema` run on the collected frame, so value checks run.

    `headers` names the CSV header of each checked column; an error's detail is the
    column's problem cell where there is one, else `details[reason]`.
    """
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        errors = _failures_as_errors(frame, exc.failure_cases, headers=headers, details=details)
        return frame.join(errors.select(ROW).unique(), on=ROW, how="anti"), errors
    return frame, empty_errors()


def _failures_as_errors(
    frame: pl.DataFrame,
    failures: pl.DataFrame,
    *,
    headers: Mapping[str, str],
    details: Mapping[str, str],
) -> pl.DataFrame:
    row_level = failures.filter(pl.col("index").is_not_null())
    schema_level = failures.filter(pl.col("index").is_null())
    if schema_level.height:
        msg = f"the validation schema does not fit the frame: {schema_level.to_dicts()}"
        raise RuntimeError(msg)
    indexed = frame.with_row_index("index")
    parts = []
    for (column, check), group in row_level.group_by("column", "check", maintain_order=True):
        reason = str(Reason(check))
        checked = column if column in frame.columns else None
        default_detail = pl.lit(details.get(reason, reason))
        problem = problem_column(checked) if checked else None
        picked = group.select(pl.col("index").cast(pl.UInt32)).join(indexed, on="index", how="left")
        parts.append(
            picked.select(
                pl.col(ROW),
                pl.lit(headers.get(checked) if checked else None, dtype=pl.String).alias("column"),
                (pl.col(checked) if checked else pl.lit(None)).cast(pl.String).alias("value"),
                pl.lit(reason).alias("reason"),
                (
                    pl.col(problem).fill_null(default_detail)
                    if problem in frame.columns
                    else default_detail
                ).alias("detail"),
            )
        )
    return pl.concat(parts).cast(ERROR_SCHEMA) if parts else empty_errors()
