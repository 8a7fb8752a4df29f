"""Row errors as one frame, the closed set of reason slugs, and the few exceptions.

Bad data is data: every stage that rejects rows returns a frame of ERROR_SCHEMA.
Exceptions are only for "cannot continue" (a refused file, a bad mapping, an
unreachable database); each says whether retrying could help.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl


class Reason(StrEnum):
    """Why a row was failed or skipped. Skips: the duplicate reasons; the rest fail a row."""

    WRONG_COLUMN_COUNT = "wrong-column-count"
    INVALID_PHONE = "invalid-phone"
    INVALID_EMAIL = "invalid-email"
    MISSING_CONTACT_METHOD = "missing-contact-method"
    TYPE_MISMATCH = "type-mismatch"
    DUPLICATE_IN_FILE = "duplicate-in-file"
    DUPLICATE_EXISTING = "duplicate-existing"
    CONFLICTING_CONTACTS = "conflicting-contacts"
    INVALID_TIMESTAMP = "invalid-timestamp"
    INVALID_DIRECTION = "invalid-direction"
    INTERNAL_COMMENT_NOT_SUPPORTED = "internal-comment-not-supported"
    MISSING_TEXT = "missing-text"
    MEDIA_NOT_SUPPORTED = "media-not-supported"
    UNKNOWN_CHANNEL = "unknown-channel"


SKIP_REASONS = frozenset({Reason.DUPLICATE_IN_FILE, Reason.DUPLICATE_EXISTING})

ERROR_SCHEMA = pl.Schema(
    {
        "row": pl.Int64(),
        "column": pl.String(),
        "value": pl.String(),
        "reason": pl.String(),
        "detail": pl.String(),
    }
)


def empty_errors() -> pl.DataFrame:
    """An error frame with no rows."""
    return pl.DataFrame(schema=ERROR_SCHEMA)


def errors_where(
    frame: pl.DataFrame,
    condition: pl.Expr,
    *,
    reason: Reason,
    column: str | pl.Expr | None,
    value: pl.Expr | None,
    detail: str | pl.Expr,
) -> pl.DataFrame:
    """One error row for each row of `frame` (which has a `row` column) where `condition` holds."""
    detail_expr = pl.lit(detail) if isinstance(detail, str) else detail
    column_expr = column if isinstance(column, pl.Expr) else pl.lit(column, dtype=pl.String)
    return frame.filter(condition).select(
        pl.col("row").cast(pl.Int64),
        column_expr.cast(pl.String).alias("column"),
        (value if value is not None else pl.lit(None)).cast(pl.String).alias("value"),
        pl.lit(str(reason)).alias("reason"),
        detail_expr.cast(pl.String).alias("detail"),
    )


def concat_errors(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """All error frames as one, ordered by row then reason."""
    frames = [f.select(list(ERROR_SCHEMA)).cast(ERROR_SCHEMA) for f in frames if f.height]
    if not frames:
        return empty_errors()
    return pl.concat(frames).sort("row", "reason", "column", nulls_last=True)


class MdpipeError(Exception):
    """Base of mdpipe's exceptions. `transient` says whether retrying the same call could help."""

    transient = False


class FileRefused(MdpipeError):
    """The file cannot be imported as a whole (format, encoding, limits, header)."""


class MappingError(MdpipeError):
    """The column mapping is wrong (unknown field, two columns for one field, bad mapping file)."""


class SetupError(MdpipeError):
    """A workspace setting is wrong (unknown property type, duplicate channel, ...)."""


class SourceUnavailable(MdpipeError):
    """A remote file could not be fetched for now (network, server error)."""

    transient = True


class DatabaseUnavailable(MdpipeError):
    """The database could not be reached or dropped the connection."""

    transient = True
