"""The `mdpipe` command: imports, workspace administration, run history."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.exc import DBAPIError

from mdpipe.config import DEFAULT_WORKSPACE, Limits
from mdpipe.db.engine import connect_or_fail, transaction, upgrade_schema
from mdpipe.db.runs import RUN_COLUMNS, get_run, list_runs, run_errors
from mdpipe.errors import DatabaseUnavailable, MdpipeError, SetupError
from mdpipe.imports import ImportOptions, import_contacts, import_messages
from mdpipe.mapping import parse_map_options
from mdpipe.report import RunSummary, summary_table, write_errors_csv
from mdpipe.source import local_copy, read_source
from mdpipe.validate import PROPERTY_TYPES
from mdpipe.workspace import (
    add_channel,
    add_property,
    export_contacts,
    find_workspace,
    list_channels,
    list_properties,
)

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DatabaseUnavailable as exc:
        _fail(str(exc))
        return EXIT_DATABASE
    except MdpipeError as exc:
        _fail(str(exc))
        return EXIT_REFUSED
    except DBAPIError as exc:
        _fail(f"database error: {str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")
        return EXIT_DATABASE
    except ValueError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _fail("interrupted; batches already committed stay, re-run the same file to finish")
        return 130
    except BrokenPipeError:
        # the reader (head, less) stopped reading: the work is done, the rest of its report unwanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _fail(message: str) -> None:
    print(f"mdpipe: error: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: $MDPIPE_DATABASE_URL, else sqlite:///mdpipe.db)",
    )
    common.add_argument(
        "--workspace",
        default=DEFAULT_WORKSPACE,
        help="workspace name (default: %(default)s; created on first use)",
    )
    parser = argparse.ArgumentParser(prog="mdpipe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    imports = commands.add_parser("import", help="import a CSV file").add_subparsers(
        dest="kind", required=True
    )
    contacts = imports.add_parser("contacts", parents=[common], help="import contacts")
    add_import_options(contacts, kind="contacts")
    contacts.set_defaults(handler=_import_contacts)
    messages = imports.add_parser("messages", parents=[common], help="import message history")
    add_import_options(messages, kind="messages")
    messages.set_defaults(handler=_import_messages)

    properties = commands.add_parser("properties", help="custom contact properties").add_subparsers(
        dest="action", required=True
    )
    prop_add = properties.add_parser("add", parents=[common], help="define a custom property")
    prop_add.add_argument("name")
    prop_add.add_argument("--type", required=True, choices=PROPERTY_TYPES)
    prop_add.set_defaults(handler=_add_property)
    properties.add_parser("list", parents=[common], help="list custom properties").set_defaults(
        handler=_list_properties
    )

    channels = commands.add_parser("channels", help="outbound channels (lines)").add_subparsers(
        dest="action", required=True
    )
    channel_add = channels.add_parser("add", parents=[common], help="create a channel")
    channel_add.add_argument("name")
    channel_add.add_argument(
        "--phone", required=True, help="the line's number in E.164, e.g. +15551234567"
    )
    channel_add.set_defaults(handler=_add_channel)
    channels.add_parser("list", parents=[common], help="list channels").set_defaults(
        handler=_list_channels
    )

    contacts_cmd = commands.add_parser("contacts", help="contacts").add_subparsers(
        dest="action", required=True
    )
    export = contacts_cmd.add_parser("export", parents=[common], help="export contacts as CSV")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(handler=_export_contacts)

    runs = commands.add_parser("runs", help="past imports").add_subparsers(
        dest="action", required=True
    )
    runs.add_parser("list", parents=[common], help="list import runs").set_defaults(
        handler=_list_runs
    )
    show = runs.add_parser("show", parents=[common], help="summary and row errors of one run")
    show.add_argument("run_id", type=int)
    show.add_argument("--json", action="store_true", help="print the run as JSON")
    show.set_defaults(handler=_show_run)
    errors_csv = runs.add_parser(
        "errors",
        parents=[common],
        help="write a past run's failed and skipped rows as the error CSV, their cells taken "
        "from the file it imported",
    )
    errors_csv.add_argument("run_id", type=int)
    errors_csv.add_argument("file", help="the file the run imported (checked by its sha256)")
    errors_csv.add_argument("-o", "--output", required=True, metavar="F.csv", help="CSV to write")
    errors_csv.set_defaults(handler=_write_run_errors)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="action", required=True
    )
    db.add_parser("upgrade", parents=[common], help="create or upgrade the schema").set_defaults(
        handler=_upgrade
    )
    return parser


def add_import_options(parser: argparse.ArgumentParser, *, kind: str) -> None:
    """The options of the `kind` import (the FILE argument first)."""
    parser.add_argument("file", help="the CSV file (UTF-8, header row)")
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar='"CSV header=field"',
        help="map a column to a field (repeatable); an empty field ignores the column",
    )
    parser.add_argument("--mapping-file", help="saved mapping, YAML or JSON: {CSV header: field}")
    parser.add_argument(
        "--default-region",
        metavar="CC",
        help="read numbers without +country code as this region's, e.g. US",
    )
    parser.add_argument("--dry-run", action="store_true", help="do everything but write")
    parser.add_argument(
        "--errors-out", metavar="F.csv", help="write failed and skipped rows to this CSV"
    )
    parser.add_argument(
        "--max-rows", type=int, help="row limit (default 5000, $MDPIPE_MAX_ROWS; 0 = none)"
    )
    parser.add_argument(
        "--max-bytes", type=int, help="size limit (default 10 MB, $MDPIPE_MAX_BYTES; 0 = none)"
    )
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    if kind == "contacts":
        parser.add_argument(
            "--on-duplicate",
            choices=["skip", "update"],
            default="skip",
            help="a row matching an existing contact: skip it (default) or update the contact",
        )
        return
    parser.add_argument(
        "--timezone",
        default="UTC",
        metavar="ZONE",
        help="zone of timestamps written without an offset (IANA name; default: %(default)s)",
    )
    parser.add_argument(
        "--timestamp-format",
        metavar="FORMAT",
        help="strftime format of the timestamps, e.g. '%%m/%%d/%%Y %%H:%%M' (tried before the "
        "ISO 8601, RFC 2822 and epoch forms read by default)",
    )
    parser.add_argument(
        "--channel",
        metavar="NAME",
        help="the channel (name or number) of rows that name none: a file without a channel "
        "column, or an empty cell",
    )


def _options(args: argparse.Namespace, **extra: Any) -> ImportOptions:
    return ImportOptions(
        workspace=args.workspace,
        mapping=parse_map_options(args.map),
        mapping_file=args.mapping_file,
        default_region=args.default_region,
        dry_run=args.dry_run,
        errors_out=args.errors_out,
        max_rows=args.max_rows,
        max_bytes=args.max_bytes,
        **extra,
    )


def _import_contacts(args: argparse.Namespace) -> int:
    options = _options(args, on_duplicate=args.on_duplicate)
    summary = import_contacts(
        args.file, options=options, database_url=args.database_url, progress=_progress_bar(args)
    )
    return _print_summary(summary, args)


def _import_messages(args: argparse.Namespace) -> int:
    options = _options(
        args,
        timezone=args.timezone,
        channel=args.channel,
        timestamp_format=args.timestamp_format,
    )
    summary = import_messages(
        args.file, options=options, database_url=args.database_url, progress=_progress_bar(args)
    )
    return _print_summary(summary, args)


def _print_summary(summary: RunSummary, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(summary.as_json()))
    else:
        print(summary_table(summary))
        if summary.dry_run:
            _print_table(summary.preview, "the first rows as they would be stored:")
        _print_errors(summary.errors, limit=ERRORS_SHOWN_AFTER_IMPORT)
        hidden = summary.errors.height - ERRORS_SHOWN_AFTER_IMPORT
        if hidden > 0:
            where = (
                f"mdpipe runs show {summary.run_id}"
                if summary.run_id is not None
                else "--errors-out F.csv lists them all"
            )
            print(f"... and {hidden:,} more: {where}")
        if args.errors_out:
            print(f"failed and skipped rows written to {args.errors_out}")
    return 0


def _progress_bar(args: argparse.Namespace) -> Any:
    """On a terminal: each stage's line (from the library's log) and a bar while loading."""
    if args.json or not sys.stderr.isatty():
        return None
    stages = logging.getLogger("mdpipe")
    if not stages.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        stages.addHandler(handler)
        stages.setLevel(logging.INFO)

    def show(stage: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // total if total else width
        end = "\n" if done >= total else ""
        print(
            f"\r{stage:>8} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}",
            end=end,
            file=sys.stderr,
        )

    return show


def _add_property(args: argparse.Namespace) -> int:
    add_property(connect_or_fail(args.database_url), args.workspace, args.name, args.type)
    print(f"property {args.name!r} ({args.type}) added to workspace {args.workspace!r}")
    return 0


def _list_properties(args: argparse.Namespace) -> int:
    with transaction(connect_or_fail(args.database_url)) as conn:
        properties = list_properties(conn, find_workspace(conn, args.workspace))
    for name, kind in properties.items():
        print(f"{name}\t{kind}")
    return 0


def _add_channel(args: argparse.Namespace) -> int:
    add_channel(connect_or_fail(args.database_url), args.workspace, args.name, args.phone)
    print(f"channel {args.name!r} added to workspace {args.workspace!r}")
    return 0


def _list_channels(args: argparse.Namespace) -> int:
    with transaction(connect_or_fail(args.database_url)) as conn:
        frame = list_channels(conn, find_workspace(conn, args.workspace))
    for _, name, phone in frame.iter_rows():
        print(f"{name}\t{phone}")
    return 0


def _export_contacts(args: argparse.Namespace) -> int:
    destination = Path(args.output) if args.output else None
    frame = export_contacts(connect_or_fail(args.database_url), args.workspace, destination)
    if destination is None:
        sys.stdout.write(frame.write_csv())
    else:
        print(f"{frame.height} contacts written to {destination}", file=sys.stderr)
    return 0


def _list_runs(args: argparse.Namespace) -> int:
    with transaction(connect_or_fail(args.database_url)) as conn:
        runs = list_runs(conn, find_workspace(conn, args.workspace))
    print("\t".join(RUN_COLUMNS))
    for run in runs:
        print("\t".join("" if run[c] is None else str(run[c]) for c in RUN_COLUMNS))
    return 0


def _run_and_errors(args: argparse.Namespace) -> tuple[dict[str, Any], pl.DataFrame]:
    """The run record `args.run_id` and its row errors; SetupError when there is no such run."""
    with transaction(connect_or_fail(args.database_url)) as conn:
        run = get_run(conn, args.run_id)
        if run is None:
            msg = f"no import run {args.run_id}"
            raise SetupError(msg)
        return run, run_errors(conn, args.run_id)


def _show_run(args: argparse.Namespace) -> int:
    run, errors = _run_and_errors(args)
    if args.json:
        print(json.dumps({**run, "errors": errors.to_dicts()}, default=str))
        return 0
    for key in ("id", "kind", "file_name", "status", "started_at", "finished_at"):
        print(f"{key:<12} {run[key]}")
    if run["status"] == "running":
        print(f"{'progress':<12} {run['rows_done']:,}/{run['rows_total']:,} rows loaded")
    for key in ("processed", "imported", "updated", "skipped", "failed"):
        print(f"{key:<12} {run[key]}")
    for reason, count in (run["reasons"] or {}).items():
        print(f"  {reason:<30} {count}")
    if run["error"]:
        print(f"{'error':<12} {run['error']}")
    _print_errors(errors)
    return 0


ERRORS_SHOWN_AFTER_IMPORT = 10
ERROR_COLUMNS = ["row", "column", "reason", "value", "detail"]


def _print_errors(errors: pl.DataFrame, *, limit: int | None = None) -> None:
    """Row errors (already in row order: a run's and a summary's both are) as tab-separated
    lines of row, column, reason, value, detail; the first `limit`."""
    _print_table(errors.head(limit or errors.height).select(ERROR_COLUMNS))


def _print_table(frame: pl.DataFrame, title: str | None = None) -> None:
    """A frame as tab-separated lines under its column names (tabs and newlines in cells
    shown as \\t, \\n)."""
    if not frame.height:
        return
    print(f"\n{title}" if title else "")
    print("\t".join(frame.columns))
    for row in frame.iter_rows():
        print("\t".join("" if v is None else _one_line(str(v)) for v in row))


def _one_line(cell: str) -> str:
    return cell.replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")


def _write_run_errors(args: argparse.Namespace) -> int:
    run, errors = _run_and_errors(args)
    unlimited = Limits(max_rows=0, max_bytes=0)
    with local_copy(args.file, limits=unlimited) as local:
        source = read_source(local, limits=unlimited)
    if source.sha256 != run["file_sha256"]:
        _fail(
            f"{args.file} is not the file run {args.run_id} imported ({run['file_name']}): "
            "its sha256 differs"
        )
        return EXIT_REFUSED
    written = write_errors_csv(source, errors, args.output)
    print(f"{written:,} failed and skipped rows of run {args.run_id} written to {args.output}")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    engine = connect_or_fail(args.database_url)
    print(f"schema at revision {upgrade_schema(engine)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
