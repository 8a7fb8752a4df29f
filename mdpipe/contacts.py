"""Contact rows: from mapped cells to valid, normalised rows and their errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from mdpipe.errors import Reason
from mdpipe.validate import (
    PROPERTY_PROBLEMS,
    normalise_emails,
    normalise_phones,
    problem_column,
    typed_property,
    validate_frame,
)
from schemas.contacts import contact_schema, typed_column

DETAILS = {
    Reason.MISSING_CONTACT_METHOD: "a contact needs an email or a phone number",
    Reason.INVALID_EMAIL: "not a valid email address",
    Reason.INVALID_PHONE: "not a valid E.164 phone number",
    Reason.TYPE_MISMATCH: "does not match the property's type",
}


# Google Contacts writes several values of one field into one cell: "a@x.com ::: b@x.com"
MULTI_VALUE_SEPARATOR = ":::"


def first_value(cell: pl.Expr) -> pl.Expr:
    """The first of the values a multi-value cell holds (the cell itself otherwise); a contact
    has one email and one phone, and failing the row would lose the first one too."""
    return (
        cell.str.strip_chars_start(f" {MULTI_VALUE_SEPARATOR[0]}")  # an empty first value
        .str.split_exact(MULTI_VALUE_SEPARATOR, 1)
        .struct.field("field_0")
        .str.strip_chars()
        .replace("", None)
    )


@dataclass(frozen=True)
class ValidContacts:
    """Rows that passed every check, in load shape, and the row errors of the others."""

    rows: pl.DataFrame
    errors: pl.DataFrame
    normalised_phones: int


def validate_contacts(
    fields: pl.DataFrame,
    *,
    properties: Mapping[str, str],
    headers: Mapping[str, str],
    default_region: str | None,
) -> ValidContacts:
    """Normalise emails, phones and typed properties, then run the contacts schema."""
    fields = fields.with_columns(
        first_value(pl.col(name)).alias(name)
        for name in ("email", "phone")
        if fields[name].str.contains(MULTI_VALUE_SEPARATOR, literal=True).any()
    )
    emails = normalise_emails(fields["email"])
    phones = normalise_phones(fields["phone"], default_region=default_region)
    frame = fields.with_columns(
        emails["normalised"].alias("email_normalised"),
        emails["problem"].alias(problem_column("email")),
        phones["normalised"].alias("phone_e164"),
        phones["problem"].alias(problem_column("phone")),
        *(
            typed_property(pl.col(name), kind).alias(typed_column(name))
            for name, kind in properties.items()
        ),
    )
    frame = frame.with_columns(
        pl.when(pl.col(name).is_not_null() & pl.col(typed_column(name)).is_null())
        .then(pl.lit(f"{PROPERTY_PROBLEMS.get(kind, '')} ({name} is a {kind} property)"))
        .alias(problem_column(name))
        for name, kind in properties.items()
    )
    schema = contact_schema(properties)
    valid, errors = validate_frame(
        frame.select(list(schema.columns)),
        schema,
        headers=headers,
        details={str(k): v for k, v in DETAILS.items()},
    )
    normalised = valid.filter(
        pl.col("phone").is_not_null() & (pl.col("phone") != pl.col("phone_e164"))
    ).height
    return ValidContacts(
        rows=_load_shape(valid, properties), errors=errors, normalised_phones=normalised
    )


def properties_json(properties: Mapping[str, str]) -> pl.Expr:
    """A JSON object of the row's given properties; absent ones are left out, so a merge keeps them."""
    if not properties:
        return pl.lit("{}")
    members = [
        pl.when(pl.col(typed_column(name)).is_not_null()).then(
            pl.struct(
                (
                    pl.col(typed_column(name)).cast(pl.String)
                    if kind == "date"
                    else pl.col(typed_column(name))
                ).alias(name)
            )
            .struct.json_encode()
            .str.strip_prefix("{")
            .str.strip_suffix("}")
        )
        for name, kind in properties.items()
    ]
    body = pl.concat_str(members, separator=",", ignore_nulls=True)
    return pl.concat_str([pl.lit("{"), body, pl.lit("}")])


def _load_shape(valid: pl.DataFrame, properties: Mapping[str, str]) -> pl.DataFrame:
    return valid.select(
        "row",
        "first_name",
        "last_name",
        pl.col("email_normalised").alias("email"),
        pl.col("email_normalised").str.to_lowercase().alias("email_key"),
        pl.col("phone_e164").alias("phone"),
        "company",
        properties_json(properties).alias("properties"),
    )
