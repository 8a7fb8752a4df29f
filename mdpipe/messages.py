"""Message rows: parse timestamps, directions, participants and channels; run the messages schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from mdpipe.errors import MappingError, Reason, SetupError
from mdpipe.validate import normalise_phones, problem_column, validate_frame
from schemas.messages import message_schema

DIRECTIONS = {
    **dict.fromkeys(("inbound", "in", "incoming", "received"), "inbound"),
    **dict.fromkeys(
        ("outbound", "out", "outgoing", "sent", "outbound-api", "outbound-reply", "outbound-call"),
        "outbound",
    ),
    **dict.fromkeys(("note", "comment", "internal"), "internal"),
}
DETAILS = {
    Reason.INVALID_TIMESTAMP: "expected ISO 8601 (2025-06-01T10:15:00Z), RFC 2822 or Unix epoch "
    "seconds or milliseconds; for another format (6/1/2025 10:15) pass --timestamp-format",
    Reason.INVALID_DIRECTION: "expected inbound or outbound",
    Reason.INTERNAL_COMMENT_NOT_SUPPORTED: "internal comments are not imported",
    Reason.INVALID_PHONE: "not a valid E.164 phone number",
    Reason.UNKNOWN_CHANNEL: "no such channel in the workspace; add it with `mdpipe channels add`",
    Reason.MISSING_TEXT: "the message has no text",
    Reason.MEDIA_NOT_SUPPORTED: "media attachments are not imported and the row has no text",
}
SENT_AT_FORMAT = "%Y-%m-%d %H:%M:%S%.6f"


@dataclass(frozen=True)
class ValidMessages:
    """Rows that passed every check, in load shape, and the row errors of the others."""

    rows: pl.DataFrame
    errors: pl.DataFrame
    dropped_attachments: int


def check_timezone(name: str) -> str:
    """The IANA zone name, or SetupError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Paris"
        raise SetupError(msg) from None
    return name


def check_message_mapping(mapped: Mapping[str, int], *, default_channel: str | None) -> None:
    """Raise MappingError unless the mapping can tell time, direction, text, party and channel."""
    channel = "channel" in mapped or default_channel is not None
    parties = ("phone" in mapped and channel) or {"from", "to"} <= set(mapped)
    missing = [f for f in ("timestamp", "direction", "text") if f not in mapped]
    if not parties:
        missing.append("phone and channel (or from and to)")
    if missing:
        msg = f'no column maps to {", ".join(missing)}; map them with --map "CSV header=field"'
        if "phone" in mapped and not channel:
            msg += ", or name the file's channel with --channel"
        raise MappingError(msg)


def check_default_channel(name: str, channels: pl.DataFrame) -> None:
    """Raise SetupError unless `name` names or numbers one of the workspace's channels."""
    problem = resolve_channels(pl.Series([name], dtype=pl.String), channels)["problem"][0]
    if problem is not None:
        msg = f"--channel {name!r}: {problem}"
        raise SetupError(msg)


def check_timestamp_format(fmt: str) -> str:
    """The strftime format, or SetupError when it holds no directive or Polars refuses it."""
    problem = None if "%" in fmt else "expected strftime directives"
    try:
        pl.Series([""], dtype=pl.String).str.to_datetime(fmt, strict=False, time_unit="us")
    except pl.exceptions.PolarsError as exc:  # e.g. an hour without minutes
        problem = str(exc).splitlines()[0]
    if problem:
        msg = f"--timestamp-format {fmt!r}: {problem}, e.g. '%m/%d/%Y %H:%M'"
        raise SetupError(msg)
    return fmt


def _in_format(cell: pl.Expr, fmt: str, timezone: str) -> pl.Expr:
    """Cells written in `fmt`: with an offset in it, as given; else in `timezone`."""
    parsed = cell.str.to_datetime(fmt, strict=False, time_unit="us")
    if any(directive in fmt for directive in ("%z", "%:z", "%#z")):
        return parsed
    return parsed.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")


def parse_timestamps(cell: pl.Expr, timezone: str, fmt: str | None = None) -> pl.Expr:
    """The instant (UTC) of ISO 8601 cells (with or without offset), RFC 2822 or Unix epoch
    seconds or milliseconds, or, first, of cells in the strftime format `fmt`."""
    iso = cell.str.replace(" ", "T", literal=True, n=1).str.replace(r"(?i)Z$", "+00:00")
    # seconds; 12-13 digits are milliseconds (as phones' backups write them): as seconds they
    # would be past the year 5000
    epoch = (
        pl.when(cell.str.contains(r"^\d{1,11}(\.\d{1,6})?$"))
        .then((cell.cast(pl.Float64, strict=False) * 1_000_000).round(0).cast(pl.Int64))
        .when(cell.str.contains(r"^\d{12,13}$"))
        .then(cell.cast(pl.Int64, strict=False) * 1_000)
    )
    naive = pl.coalesce(
        iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
        iso.str.to_datetime("%Y-%m-%dT%H:%M", strict=False, time_unit="us"),
    ).dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    given = [_in_format(cell, fmt, timezone).dt.convert_time_zone("UTC")] if fmt else []
    return pl.coalesce(
        *given,
        epoch.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us"),
        iso.str.to_datetime("%Y-%m-%dT%H:%M%:z", strict=False, time_unit="us"),
        naive.dt.convert_time_zone("UTC"),
        cell.str.to_datetime("%a, %d %b %Y %H:%M:%S %z", strict=False, time_unit="us"),
    ).dt.convert_time_zone("UTC")


def resolve_parties(fields: pl.DataFrame, mapped: Mapping[str, int]) -> pl.DataFrame:
    """`phone` and `channel` from the `from`/`to` form where the file has no phone/channel."""
    outbound = pl.col("direction_kind") == "outbound"
    inbound = pl.col("direction_kind") == "inbound"
    columns = []
    if "phone" not in mapped:
        columns.append(
            pl.when(outbound).then(pl.col("to")).when(inbound).then(pl.col("from")).alias("phone")
        )
    if "channel" not in mapped:
        columns.append(
            pl.when(outbound).then(pl.col("from")).when(inbound).then(pl.col("to")).alias("channel")
        )
    uses_from_to = "phone" not in mapped or "channel" not in mapped
    return fields.with_columns(
        *columns,
        (pl.col("direction_kind").is_in(["inbound", "outbound"]) if uses_from_to else pl.lit(True))
        .fill_null(False)
        .alias("parties_known"),
    )


def participants(cells: pl.Series, *, default_region: str | None) -> pl.DataFrame:
    """Per cell: the sorted, distinct E.164 participants as a key, or why a number is bad.

    A conversation's cell repeats on each of its messages: each distinct cell is worked
    out once and joined back."""
    distinct = cells.unique()
    keyed = pl.concat(
        [
            distinct.to_frame("cell"),
            _participants_of_each(distinct, default_region=default_region),
        ],
        how="horizontal",
    )
    return (
        cells.to_frame("cell")
        .join(keyed, on="cell", how="left", nulls_equal=True, maintain_order="left")
        .drop("cell")
    )


def _participants_of_each(cells: pl.Series, *, default_region: str | None) -> pl.DataFrame:
    numbers = (
        cells.to_frame("cell")
        .with_row_index("at")
        .with_columns(pl.col("cell").str.replace_all(";", ",").str.split(",").alias("number"))
        .explode("number")
        .with_columns(pl.col("number").str.strip_chars())
        .filter(pl.col("number").is_not_null() & (pl.col("number") != ""))
    )
    verdicts = normalise_phones(numbers["number"], default_region=default_region)
    numbers = numbers.with_columns(verdicts["normalised"], verdicts["problem"])
    per_cell = numbers.group_by("at").agg(
        pl.col("normalised").drop_nulls().unique().sort().str.join(",").alias("key"),
        pl.col("problem").is_not_null().any().alias("bad"),
        pl.format("{}: {}", pl.col("number"), pl.col("problem"))
        .drop_nulls()
        .first()
        .alias("problem"),
    )
    return (
        pl.DataFrame({"at": pl.int_range(0, cells.len(), eager=True, dtype=pl.UInt32)})
        .join(per_cell, on="at", how="left", maintain_order="left")
        .select(
            pl.when(~pl.col("bad").fill_null(True)).then(pl.col("key")).alias("participants_key"),
            pl.when(pl.col("bad").is_null())
            .then(pl.lit("no phone number given"))
            .otherwise(pl.col("problem"))
            .alias("problem"),
        )
    )


def resolve_channels(cells: pl.Series, channels: pl.DataFrame) -> pl.DataFrame:
    """Per cell: the id of the channel named or numbered so (case-insensitive name), or why not."""
    distinct = cells.drop_nulls().unique().to_frame("cell")
    as_phone = normalise_phones(distinct["cell"], default_region=None)["normalised"]
    by_name = channels.select(
        pl.col("id").alias("by_name"), pl.col("name").str.to_lowercase().alias("key")
    )
    by_phone = channels.select(pl.col("id").alias("by_phone"), pl.col("phone"))
    lookup = (
        distinct.with_columns(
            pl.col("cell").str.to_lowercase().alias("key"), as_phone.alias("phone")
        )
        .join(by_name, on="key", how="left")
        .join(by_phone, on="phone", how="left")
        .select("cell", pl.coalesce("by_name", "by_phone").alias("channel_id"))
    )
    return (
        cells.to_frame("cell")
        .join(lookup, on="cell", how="left", maintain_order="left")
        .select(
            "channel_id",
            pl.when(pl.col("cell").is_null())
            .then(pl.lit("no channel given"))
            .when(pl.col("channel_id").is_null())
            .then(
                pl.format(
                    "no channel named or numbered '{}' in the workspace; add it with `mdpipe channels add`",
                    pl.col("cell"),
                )
            )
            .alias("problem"),
        )
    )


def validate_messages(
    fields: pl.DataFrame,
    *,
    mapped: Mapping[str, int],
    channels: pl.DataFrame,
    headers: Mapping[str, str],
    timezone: str,
    default_region: str | None,
    default_channel: str | None = None,
    timestamp_format: str | None = None,
) -> ValidMessages:
    """Parse every cell, then run the messages schema; returns the valid rows and row errors.

    `default_channel` stands for the channel of rows that name none."""
    frame = fields.with_columns(
        parse_timestamps(pl.col("timestamp"), timezone, timestamp_format).alias("sent_at"),
        pl.col("direction")
        .str.to_lowercase()
        .replace_strict(DIRECTIONS, default=None)
        .alias("direction_kind"),
        (pl.col("text").is_null() | (pl.col("text").str.strip_chars() == "")).alias("text_blank"),
        (pl.col("media").is_not_null() & (pl.col("media") != "0")).alias("has_media"),
    )
    frame = resolve_parties(frame, mapped)
    if default_channel is not None:
        frame = frame.with_columns(pl.col("channel").fill_null(default_channel))
    parties = participants(frame["phone"], default_region=default_region)
    lines = resolve_channels(frame["channel"], channels)
    frame = frame.with_columns(
        parties["participants_key"],
        parties["problem"].alias(problem_column("phone")),
        lines["channel_id"].cast(pl.Int64),
        lines["problem"].alias(problem_column("channel")),
        pl.when(pl.col("sent_at").is_null() & pl.col("timestamp").is_null())
        .then(pl.lit("no timestamp given"))
        .alias(problem_column("timestamp")),
        pl.when(pl.col("direction_kind").is_null())
        .then(
            pl.format(
                "'{}' is not a direction: expected inbound or outbound",
                pl.col("direction").fill_null(""),
            )
        )
        .alias(problem_column("direction")),
    )
    schema = message_schema()
    valid, errors = validate_frame(
        frame.select(list(schema.columns)),
        schema,
        headers=_error_headers(headers, mapped),
        details={str(k): v for k, v in DETAILS.items()},
    )
    dropped = valid.filter(pl.col("has_media")).height
    return ValidMessages(rows=_load_shape(valid), errors=errors, dropped_attachments=dropped)


def _error_headers(headers: Mapping[str, str], mapped: Mapping[str, int]) -> dict[str, str]:
    """The header to name in an error: for the from/to form, both."""
    named = dict(headers)
    if {"from", "to"} & set(mapped) and ("phone" not in mapped or "channel" not in mapped):
        pair = f"{headers.get('from')}/{headers.get('to')}"
        named.setdefault("phone", pair)
        named.setdefault("channel", pair)
    return named


def _load_shape(valid: pl.DataFrame) -> pl.DataFrame:
    return valid.select(
        "row",
        "channel_id",
        "participants_key",
        pl.col("direction_kind").alias("direction"),
        "sent_at",
        "text",
        "external_id",
    )
