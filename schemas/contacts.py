"""What a valid contact row is, after its cells were trimmed and normalised.

Raw cells keep the field's name (`email`, `phone`, a property's name); the
normalised forms sit beside them (`email_normalised`, `phone_e164`,
`<property>__typed`). A check's name is the reason slug a failing row gets.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandera.polars as pa
import polars as pl

from mdpipe.errors import Reason
from schemas.checks import any_present, e164, normalised_when_given, problem, text

STANDARD_FIELDS = ("first_name", "last_name", "email", "phone", "company")
PROPERTY_DTYPES: dict[str, type[pl.DataType]] = {
    "text": pl.String,
    "number": pl.Float64,
    "boolean": pl.Boolean,
    "date": pl.Date,
}


def typed_column(name: str) -> str:
    """The column holding property `name` as its type."""
    return f"{name}__typed"


def contact_schema(properties: Mapping[str, str]) -> pa.DataFrameSchema:
    """The schema for contact rows with these custom properties (name -> type)."""
    columns: dict[str, pa.Column] = {
        "row": pa.Column(pl.Int64, unique=True),
        "first_name": text(),
        "last_name": text(),
        "company": text(),
        "email": text(normalised_when_given("email", "email_normalised", Reason.INVALID_EMAIL)),
        "email_normalised": text(pa.Check.str_contains("@")),
        **problem("email"),
        "phone": text(normalised_when_given("phone", "phone_e164", Reason.INVALID_PHONE)),
        "phone_e164": e164(),
        **problem("phone"),
    }
    for name, kind in properties.items():
        columns[name] = text(normalised_when_given(name, typed_column(name), Reason.TYPE_MISMATCH))
        columns[typed_column(name)] = pa.Column(PROPERTY_DTYPES[kind], nullable=True)
        columns.update(problem(name))
    return pa.DataFrameSchema(
        columns,
        checks=[any_present(["email", "phone"], Reason.MISSING_CONTACT_METHOD)],
        strict=True,
        name="contacts",
    )
