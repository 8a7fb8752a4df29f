"""What a valid message row is, after its cells were parsed.

Raw cells keep the field's name (`timestamp`, `direction`, `phone`, `channel`,
`text`); parsed forms sit beside them (`sent_at`, `direction_kind`,
`participants_key`, `channel_id`). A check's name is the reason slug a failing
row gets.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from mdpipe.errors import Reason
from schemas.checks import text


def _check(reason: Reason, condition: pl.Expr) -> pa.Check:
    def check(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(condition)

    return pa.Check(check, name=str(reason))


def message_schema() -> pa.DataFrameSchema:
    """The schema for message rows."""
    known_parties = pl.col("parties_known")
    return pa.DataFrameSchema(
        {
            "row": pa.Column(pl.Int64, unique=True),
            "timestamp": text(_check(Reason.INVALID_TIMESTAMP, pl.col("sent_at").is_not_null())),
            "sent_at": pa.Column(pl.Datetime("us", "UTC"), nullable=True),
            "timestamp__problem": text(),
            "direction": text(
                _check(
                    Reason.INTERNAL_COMMENT_NOT_SUPPORTED,
                    pl.col("direction_kind").fill_null("") != "internal",
                ),
                _check(Reason.INVALID_DIRECTION, pl.col("direction_kind").is_not_null()),
            ),
            "direction_kind": text(pa.Check.isin(["inbound", "outbound", "internal"])),
            "direction__problem": text(),
            "phone": text(
                _check(
                    Reason.INVALID_PHONE, ~known_parties | pl.col("participants_key").is_not_null()
                )
            ),
            "participants_key": text(pa.Check.str_matches(r"^\+\d{2,15}(,\+\d{2,15})*$")),
            "phone__problem": text(),
            "channel": text(
                _check(Reason.UNKNOWN_CHANNEL, ~known_parties | pl.col("channel_id").is_not_null())
            ),
            "channel_id": pa.Column(pl.Int64, nullable=True),
            "channel__problem": text(),
            "parties_known": pa.Column(pl.Boolean),
            "text": text(
                _check(
                    Reason.MISSING_TEXT,
                    pl.col("has_media") | ~pl.col("text_blank"),
                ),
                _check(
                    Reason.MEDIA_NOT_SUPPORTED,
                    ~(pl.col("has_media") & pl.col("text_blank")),
                ),
            ),
            "text_blank": pa.Column(pl.Boolean),
            "has_media": pa.Column(pl.Boolean),
            "external_id": text(),
        },
        strict=True,
        name="messages",
    )
