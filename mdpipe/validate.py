"""Normalise and check cells: phones, emails, typed properties; run a Pandera schema.

The expensive checks (phonenumbers, email-validator) run once per distinct
value and are joined back; everything else is a Polars expression. A Pandera
schema from `schemas/` then declares which rows are valid, and its failure
cases become the row-error frame.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping, Sequence

import pandera.polars as pa
import phonenumbers
import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from mdpipe.errors import ERROR_SCHEMA, Reason, SetupError, empty_errors
from mdpipe.mapping import ColumnMapping
from mdpipe.source import ROW, Source, cell_column

E164 = re.compile(r"^\+\d{2,15}$")
PHONE_PUNCTUATION = r"[\s\-.()\u00a0]+"
# what a spreadsheet writes for a long number in a General cell (1.55512E+10), dot removed
SCIENTIFIC_NOTATION = re.compile(r"\d+E\+?\d+", re.IGNORECASE)
PROBLEM = "__problem"

Verdict = tuple[str | None, str | None]  # (normalised value, problem)


def problem_column(column: str) -> str:
    """The name of the column holding why `column`'s cell is invalid."""
    return f"{column}{PROBLEM}"


def prepare_fields(
    source: Source,
    mapping: ColumnMapping,
    fields: Sequence[str],
    *,
    untrimmed: Collection[str] = (),
) -> pl.DataFrame:
    """`row` plus one text column per field: trimmed (but `untrimmed` fields kept byte for
    byte), null where empty or unmapped."""
    columns = [pl.col(ROW)]
    for field in fields:
        if field in mapping.fields:
            raw = pl.col(cell_column(mapping.fields[field]))
            cell = raw if field in untrimmed else raw.str.strip_chars()
            columns.append(pl.when(cell != "").then(cell).alias(field))
        else:
            columns.append(pl.lit(None, dtype=pl.String).alias(field))
    return source.cells.select(columns)


def check_distinct(
    values: pl.Series,
    check: Callable[[str], Verdict],
    *,
    fast: Callable[[pl.Series], pl.DataFrame] | None = None,
) -> pl.DataFrame:
    """(normalised, problem) per cell, in the cells' order.

    `fast` decides with vectorised expressions the cells it is sure of (a frame aligned
    with `values`: normalised, problem, decided); `check` runs once per distinct value
    of the other cells, and its verdicts are put back in place.
    """
    verdicts = fast(values) if fast is not None else _undecided(values.len())
    pending = (
        values.to_frame("value")
        .with_row_index("at")
        .filter(~verdicts["decided"] & pl.col("value").is_not_null())
    )
    distinct = pending["value"].unique().to_list()
    checked = pending.join(
        _verdicts(distinct, [check(value) for value in distinct]), on="value", how="left"
    )
    return pl.DataFrame(
        [
            verdicts[column].clone().scatter(checked["at"], checked[column])
            for column in ("normalised", "problem")
        ]
    )


def _undecided(length: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "normalised": pl.repeat(None, length, dtype=pl.String, eager=True),
            "problem": pl.repeat(None, length, dtype=pl.String, eager=True),
            "decided": pl.repeat(False, length, eager=True),
        }
    )


def _verdicts(values: list[str], verdicts: list[Verdict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "value": values,
            "normalised": [v[0] for v in verdicts],
            "problem": [v[1] for v in verdicts],
        },
        schema={"value": pl.String, "normalised": pl.String, "problem": pl.String},
    )


def check_region(region: str | None) -> str | None:
    """The region code, upper-cased, or SetupError when phonenumbers does not know it."""
    if region is None:
        return None
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        msg = (
            f"--default-region {region!r}: not a region phonenumbers knows; "
            "use a two-letter country code such as US, GB or DE"
        )
        raise SetupError(msg)
    return region.upper()


def phone_verdict(default_region: str | None) -> Callable[[str], Verdict]:
    """The check for one phone cell already stripped of spaces, dashes, dots and parentheses."""

    def verdict(number: str) -> Verdict:
        if number.startswith("+"):
            if not E164.match(number):
                return None, "not E.164: expected + then 2 to 15 digits"
            region = None
        elif SCIENTIFIC_NOTATION.fullmatch(number):
            return None, (
                "a spreadsheet wrote this number in scientific notation and dropped digits; "
                "format the column as text and export the file again"
            )
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
    region = default_region.upper() if default_region else None
    return check_distinct(stripped, phone_verdict(region), fast=fast_phone_verdicts)


@functools.cache
def _country_codes() -> pl.DataFrame:
    """Per country calling code: the national lengths phonenumbers calls possible, and the
    national-prefix pattern its parser would try to strip (None where there is none)."""
    rows = []
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        region = phonenumbers.region_code_for_country_code(code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if metadata is None:
            continue
        desc = metadata.general_desc
        if desc is None:
            continue
        lengths = {*desc.possible_length, *desc.possible_length_local_only} - {-1}
        rows.append((str(code), sorted(lengths), metadata.national_prefix_for_parsing))
    return pl.DataFrame(
        rows,
        schema={"cc": pl.String, "lengths": pl.List(pl.Int64), "prefix": pl.String},
        orient="row",
    )


def fast_phone_verdicts(cells: pl.Series) -> pl.DataFrame:
    """Verdicts for `+digits` numbers decided from phonenumbers' own metadata, vectorised.

    For a number `+<cc><national>` whose national part does not start with what the parser
    strips as a national prefix, phonenumbers' `is_possible_number` depends only on the
    country code and the national part's length, and the E.164 form is the input itself.
    Numbers outside that case are left to the library (tests/test_fastpath.py proves the
    agreement). Returns normalised, problem, decided, aligned with `cells`.
    """
    codes = _country_codes()
    value = pl.col("value")
    calling_code = pl.coalesce(
        pl.when(value.str.slice(1, size).is_in(codes["cc"].implode())).then(
            value.str.slice(1, size)
        )
        for size in (1, 2, 3)
    )
    frame = (
        cells.to_frame("value")
        .with_columns(pl.when(value.str.contains(E164.pattern)).then(calling_code).alias("cc"))
        .with_columns(value.str.slice(pl.col("cc").str.len_chars() + 1).alias("national"))
        .join(codes.select("cc", "lengths"), on="cc", how="left", maintain_order="left")
    )
    present = set(frame["cc"].drop_nulls().unique().to_list())
    strippable = [
        (pl.col("cc") == cc) & pl.col("national").str.contains(f"^(?:{prefix})")
        for cc, prefix in codes.drop_nulls("prefix").select("cc", "prefix").iter_rows()
        if cc in present
    ]
    decided = (
        pl.col("cc").is_not_null()
        & (pl.col("national").str.len_chars() >= 2)
        & ~pl.any_horizontal(strippable or [pl.lit(False)])
    ).fill_null(False)
    possible = pl.col("lengths").list.contains(pl.col("national").str.len_chars().cast(pl.Int64))
    return frame.select(
        pl.when(decided & possible).then(value).alias("normalised"),
        pl.when(decided & ~possible)
        .then(pl.format("not a possible number for country code +{}", pl.col("cc")))
        .alias("problem"),
        decided.alias("decided"),
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
    return check_distinct(cells, email_verdict, fast=fast_email_verdicts)


# A deliberately narrow class of plain ASCII addresses that email-validator accepts and
# normalises by lower-casing the domain; anything else goes to the library itself.
_LOCAL = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = rf"^{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"


def fast_email_verdicts(cells: pl.Series) -> pl.DataFrame:
    """Valid verdicts for plain ASCII addresses, vectorised; the rest is left to the library.

    Within the class `_PLAIN_EMAIL` (no quoting, no Unicode, no label with '--', lengths
    within the RFC limits, not a special-use domain), email-validator accepts the address
    and its normalised form is the local part plus the lower-cased domain
    (tests/test_fastpath.py proves the agreement). Returns normalised, problem, decided,
    aligned with `cells`.
    """
    parts = cells.to_frame("value").with_columns(
        pl.col("value").str.split_exact("@", 1).struct.rename_fields(["local", "domain"]),
        pl.col("value").str.contains(_PLAIN_EMAIL).alias("plain"),
    )
    parts = parts.unnest("value", separator="_").with_columns(
        pl.col("value_domain").str.to_lowercase().alias("domain"),
        cells.alias("value"),
    )
    special = pl.any_horizontal(
        (pl.col("domain") == name) | pl.col("domain").str.ends_with(f".{name}")
        for name in SPECIAL_USE_DOMAIN_NAMES
    )
    decided = (
        pl.col("plain")
        & (pl.col("value_local").str.len_bytes() <= 64)
        & (pl.col("domain").str.len_bytes() <= 253)
        & (pl.col("value").str.len_bytes() <= 254)
        & ~pl.col("domain").str.contains("--")
        & ~special
    ).fill_null(False)
    return parts.select(
        pl.when(decided)
        .then(pl.concat_str("value_local", pl.lit("@"), "domain"))
        .alias("normalised"),
        pl.lit(None, dtype=pl.String).alias("problem"),
        decided.alias("decided"),
    )


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
        failed = frame[ROW].is_in(errors[ROW].implode())
        return frame.filter(~failed), errors
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
