"""Generate benchmark CSVs with a known share of invalid and duplicate rows (vectorised, seeded)."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl


def contacts_frame(rows: int, *, seed: int = 7) -> pl.DataFrame:
    """`rows` contacts: about 2% bad emails, 2% bad phones, 1% repeats of an earlier row."""
    index = pl.int_range(0, rows, eager=True).alias("i")
    frame = pl.DataFrame(index).with_columns(
        (pl.col("i").hash(seed) % 100).alias("bucket"),
        (pl.col("i").hash(seed + 1) % 10_000_000).alias("n"),
    )
    # a repeat points at an earlier row's identity
    identity = pl.when(pl.col("bucket") == 0).then(pl.col("i") // 2).otherwise(pl.col("i"))
    return frame.select(
        pl.format("First{}", pl.col("i") % 5000).alias("First Name"),
        pl.format("Last{}", pl.col("i") % 7919).alias("Last Name"),
        pl.when(pl.col("bucket").is_between(1, 2))
        .then(pl.format("user{}-at-example.com", identity))
        .otherwise(pl.format("user{}@example.com", identity))
        .alias("Email"),
        pl.when(pl.col("bucket").is_between(3, 4))
        .then(pl.format("555{}", identity))
        .otherwise(
            pl.format(
                "+1 (415) {}-{}",
                (identity // 10_000 % 900 + 100),
                (identity % 10_000).cast(pl.String).str.zfill(4),
            )
        )
        .alias("Phone"),
        pl.format("Company {}", pl.col("i") % 1000).alias("Company"),
    )


CHANNELS = (("Main line", "+15550100000"), ("Support", "+15550100001"))


def messages_frame(rows: int, *, conversations: int = 50_000, seed: int = 11) -> pl.DataFrame:
    """`rows` messages over `conversations` threads (one in ten a group) on two channels:
    about 1% bad timestamps, 1% bad phones, 1% repeats of the previous row."""
    frame = pl.DataFrame(pl.int_range(0, rows, eager=True).alias("i")).with_columns(
        (pl.col("i").hash(seed) % 100).alias("bucket")
    )
    identity = pl.when(pl.col("bucket") == 0).then(pl.col("i") - 1).otherwise(pl.col("i")).clip(0)
    thread = identity.hash(seed + 1) % conversations
    number = pl.format("+1415{}", (thread + 10_000_000).cast(pl.String).str.slice(1))
    second = pl.format("+4420794{}", (thread % 100_000 + 100_000).cast(pl.String).str.slice(1))
    phones = pl.when(thread % 10 == 0).then(pl.format("{};{}", number, second)).otherwise(number)
    sent = pl.lit(1_735_689_600) + identity * 30
    return frame.select(
        pl.when(pl.col("bucket") == 1)
        .then(pl.lit("not a date"))
        .otherwise(
            sent.cast(pl.Int64)
            .mul(1_000_000)
            .cast(pl.Datetime("us"))
            .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        .alias("Timestamp"),
        pl.when(identity.hash(seed + 2) % 2 == 0)
        .then(pl.lit("outbound"))
        .otherwise(pl.lit("inbound"))
        .alias("Direction"),
        pl.when(pl.col("bucket") == 2).then(pl.lit("12345")).otherwise(phones).alias("Phone"),
        pl.format("Message {} about order {}", identity, identity % 977).alias("Text"),
        pl.when(thread % 2 == 0)
        .then(pl.lit(CHANNELS[0][0]))
        .otherwise(pl.lit(CHANNELS[1][1]))
        .alias("Channel"),
        pl.format("SM{}", identity).alias("Message ID"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["contacts", "messages"])
    parser.add_argument("rows", type=int)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    frame = contacts_frame(args.rows) if args.kind == "contacts" else messages_frame(args.rows)
    frame.write_csv(args.output)
    print(f"wrote {args.rows:,} rows to {args.output}")


if __name__ == "__main__":
    main()
