"""Benchmark the contacts import into SQLite and PostgreSQL against a bare PostgreSQL COPY.

    .venv/bin/python benchmarks/contacts.py --rows 5000 1000000

For each size: generate a CSV (benchmarks/generate.py: ~2% bad emails, ~2% bad
phones, ~1% in-file duplicates), import it into a fresh SQLite file and a fresh
PostgreSQL schema (each import in its own process, so its peak memory is its
own), then COPY the rows the import kept into an empty table of the same shape
with the same unique indexes, and print import time / COPY time. Compare ratios
within one run: this machine is shared and noisy.
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

from benchmarks.generate import contacts_frame  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def child(kind: str, csv_path: str, url: str) -> None:
    """Run one import in this process and print its timing and peak memory as JSON."""
    from mdpipe.imports import ImportOptions, import_contacts

    run = import_contacts
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


CONTACT_COLUMNS = [
    "workspace_id", "first_name", "last_name", "email", "email_key", "phone", "company",
    "properties", "created_run_id", "updated_run_id",
]  # fmt: skip


def benchmark(rows: int, *, pg: str, sqlite: bool, folder: Path) -> None:
    csv_path = folder / f"contacts_{rows}.csv"
    contacts_frame(rows).write_csv(csv_path)
    size_mb = csv_path.stat().st_size / 1_048_576
    print(f"\n== {rows:,} contacts ({size_mb:.1f} MB)")
    if sqlite:
        db = folder / f"bench_{rows}.db"
        result = run_child("contacts", csv_path, f"sqlite:///{db}")
        report("sqlite", rows, result)
    schema = fresh_schema(pg)
    try:
        result = run_child("contacts", csv_path, sqlalchemy_url(pg, schema))
        report("postgresql", rows, result)
        copy_s, kept = bare_copy_seconds(pg, schema, "contacts", CONTACT_COLUMNS)
        print(
            f"  bare COPY of the {kept:,} kept rows: {copy_s:.2f} s "
            f"({kept / copy_s:,.0f} rows/s); import / COPY = {result['seconds'] / copy_s:.2f}"
        )
    finally:
        drop_schema(pg, schema)


def report(database: str, rows: int, result: dict) -> None:
    s = result["summary"]
    print(
        f"  {database:<10} {result['seconds']:7.2f} s  {rows / result['seconds']:>10,.0f} rows/s  "
        f"peak {result['peak_mb']:6.0f} MB  imported {s['imported']:,} skipped {s['skipped']:,} "
        f"failed {s['failed']:,}  stages {result['timings']}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[5000, 1_000_000])
    parser.add_argument("--postgres", default=os.environ.get("MDPIPE_BENCH_POSTGRES", DEFAULT_PG))
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            benchmark(rows, pg=args.postgres, sqlite=not args.no_sqlite, folder=Path(folder))


if __name__ == "__main__":
    main()
