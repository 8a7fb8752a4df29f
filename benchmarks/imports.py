"""Benchmark an import into SQLite and PostgreSQL against a bare PostgreSQL COPY.

    .venv/bin/python benchmarks/imports.py contacts --rows 5000 1000000
    .venv/bin/python benchmarks/imports.py messages --rows 1000000

For each size: generate a CSV (benchmarks/generate.py: contacts with ~2% bad
emails, ~2% bad phones, ~1% in-file duplicates; messages over 50,000
conversations on two channels with ~1% bad timestamps, ~1% bad phones, ~1%
repeats), import it into a fresh SQLite file and a fresh PostgreSQL schema
(each import in its own process, so its peak memory is its own), then COPY the
rows the import kept into an empty table of the same shape with the same unique
keys, and print import time / COPY time. Compare ratios within one run: this
machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generate import CHANNELS, contacts_frame, messages_frame  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def child(kind: str, csv_path: str, url: str) -> None:
    """Run one import in this process and print its timing and peak memory as JSON."""
    from mdpipe.imports import ImportOptions, import_contacts, import_messages

    run = import_contacts if kind == "contacts" else import_messages
    started = time.perf_counter()
    summary = run(csv_path, database_url=url, options=ImportOptions(max_rows=0, max_bytes=0))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_mb,
                "summary": summary.as_json(),
                "timings": summary.timings,
            }
        )
    )


def run_child(kind: str, csv_path: Path, url: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(csv_path), url],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def fresh_schema(pg: str) -> str:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema


def drop_schema(pg: str, schema: str) -> None:
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def sqlalchemy_url(pg: str, schema: str) -> str:
    return (
        pg.replace("postgresql://", "postgresql+psycopg://", 1)
        + f"?options=-csearch_path%3D{schema}"
    )


def bare_copy_seconds(pg: str, schema: str, table: str, columns: list[str]) -> tuple[float, int]:
    """COPY the rows the import kept into an empty table of the same shape and unique indexes."""
    target = fresh_schema(pg)
    try:
        with psycopg.connect(pg) as conn:
            payload = bytearray()
            cols = ", ".join(columns)
            with conn.cursor().copy(
                f"COPY (SELECT {cols} FROM {schema}.{table}) TO STDOUT"
            ) as copy:
                for block in copy:
                    payload += block
            conn.execute(f"CREATE TABLE {target}.{table} (LIKE {schema}.{table} INCLUDING ALL)")
            conn.commit()
            started = time.perf_counter()
            with conn.cursor().copy(f"COPY {target}.{table} ({cols}) FROM STDIN") as copy:
                copy.write(payload)
            conn.commit()
            seconds = time.perf_counter() - started
            rows = conn.execute(f"SELECT count(*) FROM {target}.{table}").fetchone()[0]
        return seconds, rows
    finally:
        drop_schema(pg, target)


COLUMNS = {
    "contacts": [
        "workspace_id", "first_name", "last_name", "email", "email_key", "phone", "company",
        "properties", "created_run_id", "updated_run_id",
    ],
    "messages": [
        "workspace_id", "channel_id", "conversation_id", "direction", "sent_at", "text",
        "external_id", "created_run_id",
    ],
}  # fmt: skip
FRAMES = {"contacts": contacts_frame, "messages": messages_frame}


def add_channels(url: str) -> None:
    """The channels the generated messages use (an import never creates channels)."""
    from mdpipe.db.engine import open_engine
    from mdpipe.workspace import add_channel

    engine = open_engine(url)
    for name, phone in CHANNELS:
        add_channel(engine, "default", name, phone)
    engine.dispose()


def benchmark(kind: str, rows: int, *, pg: str, sqlite: bool, folder: Path) -> None:
    csv_path = folder / f"{kind}_{rows}.csv"
    FRAMES[kind](rows).write_csv(csv_path)
    size_mb = csv_path.stat().st_size / 1_048_576
    print(f"\n== {rows:,} {kind} ({size_mb:.1f} MB)", flush=True)
    if sqlite:
        url = f"sqlite:///{folder / f'bench_{kind}_{rows}.db'}"
        if kind == "messages":
            add_channels(url)
        report("sqlite", rows, run_child(kind, csv_path, url))
    schema = fresh_schema(pg)
    try:
        url = sqlalchemy_url(pg, schema)
        if kind == "messages":
            add_channels(url)
        result = run_child(kind, csv_path, url)
        report("postgresql", rows, result)
        copy_s, kept = bare_copy_seconds(pg, schema, kind, COLUMNS[kind])
        print(
            f"  bare COPY of the {kept:,} kept rows: {copy_s:.2f} s "
            f"({kept / copy_s:,.0f} rows/s); import / COPY = {result['seconds'] / copy_s:.2f}",
            flush=True,
        )
        if kind == "contacts" and rows >= 10 * TOP_UP_ROWS:
            top_up(rows, url, folder)
    finally:
        drop_schema(pg, schema)


TOP_UP_ROWS = 5_000


def top_up(rows: int, url: str, folder: Path) -> None:
    """The everyday import: a file of the product's size into the workspace just filled."""
    path = folder / f"top_up_{rows}.csv"
    contacts_frame(rows + TOP_UP_ROWS).tail(TOP_UP_ROWS).write_csv(path)
    result = run_child("contacts", path, url)
    report(f"+{TOP_UP_ROWS:,} into {rows:,}", TOP_UP_ROWS, result)


def report(database: str, rows: int, result: dict) -> None:
    s = result["summary"]
    print(
        f"  {database:<10} {result['seconds']:7.2f} s  {rows / result['seconds']:>10,.0f} rows/s  "
        f"peak {result['peak_mb']:6.0f} MB  imported {s['imported']:,} skipped {s['skipped']:,} "
        f"failed {s['failed']:,}  stages {result['timings']}",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["contacts", "messages"])
    parser.add_argument("--rows", type=int, nargs="+", default=[5000, 1_000_000])
    parser.add_argument("--postgres", default=os.environ.get("MDPIPE_BENCH_POSTGRES", DEFAULT_PG))
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            benchmark(
                args.kind, rows, pg=args.postgres, sqlite=not args.no_sqlite, folder=Path(folder)
            )


if __name__ == "__main__":
    main()
