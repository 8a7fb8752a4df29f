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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows", type=int)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    contacts_frame(args.rows).write_csv(args.output)
    print(f"wrote {args.rows:,} rows to {args.output}")


if __name__ == "__main__":
    main()
