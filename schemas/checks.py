"""Checks shared by the contacts and messages schemas. A check's name is its reason slug."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from mdpipe.errors import Reason
from mdpipe.validate import problem_column


def normalised_when_given(raw: str, normalised: str, reason: Reason) -> pa.Check:
    """Every given `raw` cell has a `normalised` form (the distinct-value check found one)."""

    def check(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(raw).is_null() | pl.col(normalised).is_not_null())

    return pa.Check(check, name=str(reason))


def present(column: str, reason: Reason) -> pa.Check:
    """`column` has a value."""

    def check(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(column).is_not_null())

    return pa.Check(check, name=str(reason))


def any_present(columns: list[str], reason: Reason) -> pa.Check:
    """At least one of `columns` has a value (a frame-level check)."""

    def check(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.any_horizontal(pl.col(c).is_not_null() for c in columns))

    return pa.Check(check, name=str(reason))


def text(*checks: pa.Check, nullable: bool = True) -> pa.Column:
    """A text column."""
    return pa.Column(pl.String, nullable=nullable, checks=list(checks))


E164_PATTERN = r"^\+\d{2,15}$"


def e164(*, nullable: bool = True) -> pa.Column:
    """A column of E.164 numbers."""
    return pa.Column(pl.String, nullable=nullable, checks=[pa.Check.str_matches(E164_PATTERN)])


def problem(column: str) -> dict[str, pa.Column]:
    """The optional text column explaining `column`'s bad cells."""
    return {problem_column(column): text()}
