"""Open and guard a CSV file: format, encoding, header, limits and ragged rows.

Cells are separated by commas, or by semicolons or tabs (Excel's CSV in many
locales, TSV exports): the separator is read off the header row. Polars parses
the cells (fast); one pass of Python's C `csv` reader checks the structure
Polars hides: it pads short rows and truncates long ones silently,
and it knows no line numbers. Where the two parsers disagree on the number of
records, or Polars cannot parse the file, the `csv` reader's parse is used.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
import sys
import tempfile
from array import array
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import polars as pl

from mdpipe.config import Limits
from mdpipe.errors import FileRefused, Reason, SourceUnavailable, errors_where

ROW = "row"
FIRST_DATA_ROW = 2  # a spreadsheet shows the header as row 1
_CHUNK_ROWS = 100_000
SEPARATORS = (",", ";", "\t")  # a tie goes to the first
_HEADER_PROBE_BYTES = 1 << 16

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class Source:
    """A CSV file read as text cells, one positional column per header column read, plus `row`."""

    path: Path
    headers: tuple[str, ...]
    cells: pl.DataFrame
    errors: pl.DataFrame
    sha256: str
    size_bytes: int
    separator: str = ","

    @property
    def rows_read(self) -> int:
        """Data records read (blank lines are not records)."""
        return self.cells.height


def cell_column(index: int) -> str:
    """The positional name of a cells column."""
    return f"c{index}"


@dataclass(frozen=True)
class CheckedFile:
    """A CSV file that passed the file-level checks: its header and each record's cell count."""

    path: Path
    headers: tuple[str, ...]
    separator: str
    size_bytes: int
    records: pl.DataFrame
    """`row` and `cells_found` of every record after the header (0 for a blank line)."""


def read_source(
    path: str | Path, *, limits: Limits, columns: Collection[int] | None = None
) -> Source:
    """The file's cells and its wrong-column-count errors; raises FileRefused for a bad file."""
    return read_cells(check_source(path, limits=limits), columns=columns)


def check_source(path: str | Path, *, limits: Limits) -> CheckedFile:
    """The file's header and structure, or FileRefused (format, encoding, quoting, header,
    size and row limits): one pass of the `csv` reader, no cell kept."""
    path = Path(path)
    size = _check_file(path, limits=limits)
    separator = detect_separator(path)
    headers, lengths = _scan_structure(path, separator)
    records = pl.DataFrame(
        {
            ROW: pl.int_range(
                FIRST_DATA_ROW, FIRST_DATA_ROW + len(lengths), dtype=pl.Int64, eager=True
            ),
            "cells_found": pl.Series(lengths, dtype=pl.Int64),
        }
    )
    data_rows = records.filter(pl.col("cells_found") > 0).height
    if data_rows == 0:
        msg = f"{path.name}: the file has a header row but no data rows"
        raise FileRefused(msg)
    if limits.max_rows and data_rows > limits.max_rows:
        msg = (
            f"{path.name}: CSV file has too many rows: {data_rows:,} data rows "
            f"(limit {limits.max_rows:,}). Split it into smaller files or raise the limit "
            "with --max-rows (0 = no limit)"
        )
        raise FileRefused(msg)
    return CheckedFile(path, headers, separator, size, records)


def read_cells(checked: CheckedFile, *, columns: Collection[int] | None = None) -> Source:
    """The checked file's cells, of the columns at positions `columns` (default: all; the
    others are never parsed into memory), and its wrong-column-count errors."""
    path, separator, width = checked.path, checked.separator, len(checked.headers)
    # at least one column, so that the cells frame has a row per record
    read = sorted(columns or [0]) if columns is not None else list(range(width))
    records = checked.records
    cells = _read_cells(path, separator, width=width, records=records.height, read=read)
    cells = pl.concat([cells, records], how="horizontal")
    if (records["cells_found"] == 0).any():  # blank lines are not records
        cells = cells.filter(pl.col("cells_found") > 0)
    errors = errors_where(
        cells,
        pl.col("cells_found") != width,
        reason=Reason.WRONG_COLUMN_COUNT,
        column=None,
        value=None,
        detail=pl.format(
            f"expected {width} cells like the header, found {{}}", pl.col("cells_found")
        ),
    )
    errors = _with_extra_cells(path, separator, errors, width=width)
    return Source(
        path=path,
        headers=checked.headers,
        cells=cells.drop("cells_found"),
        errors=errors,
        sha256=file_sha256(path),
        size_bytes=checked.size_bytes,
        separator=separator,
    )


def detect_separator(path: Path) -> str:
    """The separator the header row uses most (outside quotes): comma, semicolon or tab."""
    with path.open("rb") as handle:
        first_line = handle.read(_HEADER_PROBE_BYTES).split(b"\n", 1)[0]
    header = re.sub(r'"[^"]*"', "", first_line.decode("utf-8", errors="replace"))
    return max(SEPARATORS, key=header.count)


@contextmanager
def _records(path: Path, separator: str) -> Iterator[Any]:
    """Python's strict csv reader over the file's records (a BOM is skipped)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        yield csv.reader(handle, delimiter=separator, strict=True)


def _with_extra_cells(
    path: Path, separator: str, errors: pl.DataFrame, *, width: int
) -> pl.DataFrame:
    """Name the cells past the header's width in the detail, so the error CSV loses nothing.

    A second `csv` pass, only when some row is too long (an error path)."""
    long_rows = set(errors.filter(pl.col("detail").str.contains(r"found \d+$"))[ROW].to_list())
    if not long_rows:
        return errors
    extra: dict[int, str] = {}
    with _records(path, separator) as reader:
        next(reader, None)
        for row, cells in enumerate(reader, start=FIRST_DATA_ROW):
            if row in long_rows and len(cells) > width:
                extra[row] = json.dumps(cells[width:], ensure_ascii=False)
    extras = pl.DataFrame(
        {ROW: list(extra), "extra": list(extra.values())},
        schema={ROW: pl.Int64, "extra": pl.String},
    )
    return (
        errors.join(extras, on=ROW, how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("extra").is_not_null())
            .then(pl.format("{}; cells past the header: {}", pl.col("detail"), pl.col("extra")))
            .otherwise(pl.col("detail"))
            .alias("detail")
        )
        .drop("extra")
    )


def file_sha256(path: Path) -> str:
    """The hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(path: Path, *, limits: Limits) -> int:
    if not path.exists():
        msg = f"{path}: no such file"
        raise FileRefused(msg)
    if not path.is_file():
        msg = f"{path}: not a file"
        raise FileRefused(msg)
    if path.suffix.lower() != ".csv":
        msg = (
            f"{path.name}: only CSV files (.csv) can be imported; "
            "export Excel or other files to CSV (UTF-8) first"
        )
        raise FileRefused(msg)
    size = path.stat().st_size
    if limits.max_bytes and size > limits.max_bytes:
        msg = (
            f"{path.name}: CSV file is too large: {size / 1_048_576:.1f} MB "
            f"(limit {limits.max_bytes / 1_048_576:.1f} MB). Split it into smaller files "
            "or raise the limit with --max-bytes (0 = no limit)"
        )
        raise FileRefused(msg)
    if size == 0:
        msg = f"{path.name}: the file is empty; a CSV needs a header row"
        raise FileRefused(msg)
    return size


def _scan_structure(path: Path, separator: str) -> tuple[tuple[str, ...], array[int]]:
    """The header and the number of cells of every data record (0 for a blank line)."""
    with _records(path, separator) as reader:
        try:
            header = next(reader, None)
            lengths = array("I", map(len, reader))
        except UnicodeDecodeError:
            raise FileRefused(_describe_bad_encoding(path)) from None
        except csv.Error:
            raise FileRefused(_describe_bad_quoting(path, separator)) from None
    if not header or all(not cell.strip() for cell in header):
        msg = f"{path.name}: the first line is empty; a CSV needs a header row"
        raise FileRefused(msg)
    return tuple(cell.strip() for cell in header), lengths


def _describe_bad_encoding(path: Path) -> str:
    data = path.read_bytes()
    hint = "re-save the file as CSV UTF-8"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return f"{path.name}: the file is UTF-16, not UTF-8; {hint}"
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        return f"{path.name}: this looks like an Excel workbook, not a CSV; export it to CSV UTF-8"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (
            f"{path.name}: not UTF-8: invalid byte 0x{data[exc.start]:02x} at byte offset "
            f"{exc.start} (line {line}); {hint}"
        )
    return f"{path.name}: not UTF-8; {hint}"  # pragma: no cover - the csv pass found a bad byte


def _describe_bad_quoting(path: Path, separator: str) -> str:
    """Where the malformed record starts: a second, slow pass, on the error path only."""
    with _records(path, separator) as reader:
        start = 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return (
                    f"{path.name}: malformed CSV: a quoted cell opened on line {start} is never "
                    "closed (a missing closing quote)"
                )
            return f"{path.name}: malformed CSV in the record starting on line {start}: {exc}"
    return f"{path.name}: malformed CSV"  # pragma: no cover - the first pass found an error


def _read_cells(
    path: Path, separator: str, *, width: int, records: int, read: list[int]
) -> pl.DataFrame:
    """The cells of the columns at positions `read` (sorted), one frame row per record."""
    schema = {cell_column(i): pl.String() for i in range(width)}
    try:
        cells = pl.read_csv(
            path,
            columns=read,
            has_header=False,
            separator=separator,
            skip_rows=1,
            schema=schema,
            truncate_ragged_lines=True,
            empty_string_is_null=False,
            missing_columns="insert",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return _read_cells_with_csv_module(path, separator, width=width, read=read)
    if cells.height != records or cells.columns != [cell_column(i) for i in read]:
        return _read_cells_with_csv_module(path, separator, width=width, read=read)
    return cells


def _read_cells_with_csv_module(
    path: Path, separator: str, *, width: int, read: list[int]
) -> pl.DataFrame:
    """The slower, exact parse: Python's csv reader, cut or padded to the header's width."""
    frames = []
    with _records(path, separator) as reader:
        next(reader, None)
        while chunk := list(itertools.islice(reader, _CHUNK_ROWS)):
            fitted = [row if len(row) == width else (row + [""] * width)[:width] for row in chunk]
            columns = list(zip(*fitted, strict=True))
            frames.append(
                pl.DataFrame({cell_column(i): pl.Series(columns[i], dtype=pl.String) for i in read})
            )
    return pl.concat(frames)


REMOTE_SCHEMES = ("http", "https", "s3", "gs", "gcs", "az", "abfs", "abfss", "memory")
_DOWNLOAD_BLOCK = 1 << 20


def is_remote(location: str | Path) -> bool:
    """Whether `location` is a URL to fetch rather than a local path."""
    return urlparse(str(location)).scheme in REMOTE_SCHEMES


@contextmanager
def local_copy(location: str | Path, *, limits: Limits) -> Iterator[Path]:
    """A local path for `location`: the path itself, or a temporary download of a URL
    (https, s3, gs, az), kept under the same file name and refused past the size limit."""
    if not is_remote(location):
        yield Path(location)
        return
    url = str(location)
    name = Path(urlparse(url).path).name or "download.csv"
    with tempfile.TemporaryDirectory(prefix="mdpipe-") as folder:
        target = Path(folder) / name
        with target.open("wb") as sink:
            for block in _remote_blocks(url):
                sink.write(block)
                if limits.max_bytes and sink.tell() > limits.max_bytes:
                    msg = (
                        f"{name}: CSV file is too large: over {limits.max_bytes / 1_048_576:.1f} MB "
                        "(the limit). Split it into smaller files or raise the limit with --max-bytes"
                    )
                    raise FileRefused(msg)
        yield target


def _remote_blocks(url: str) -> Iterator[bytes]:
    if urlparse(url).scheme in ("http", "https"):
        yield from _http_blocks(url)
        return
    try:
        import fsspec

        with fsspec.open(url, "rb") as handle:
            while block := handle.read(_DOWNLOAD_BLOCK):
                yield block
    except ImportError as exc:
        msg = f"{url}: reading this kind of URL needs an extra package ({exc.name}); see the README"
        raise FileRefused(msg) from None
    except FileNotFoundError:
        msg = f"{url}: no such file"
        raise FileRefused(msg) from None
    except OSError as exc:
        msg = f"{url}: cannot read it: {exc}"
        raise SourceUnavailable(msg) from exc


def _http_blocks(url: str) -> Iterator[bytes]:
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            if response.status_code >= 400:
                msg = f"{url}: the server answered HTTP {response.status_code}"
                error = SourceUnavailable if response.status_code >= 500 else FileRefused
                raise error(msg)
            yield from response.iter_bytes(_DOWNLOAD_BLOCK)
    except httpx.TransportError as exc:
        msg = f"{url}: cannot download it: {exc}"
        raise SourceUnavailable(msg) from exc


def list_csv_files(location: str | Path) -> list[str]:
    """The CSV files directly in a folder or under a bucket prefix, sorted by name."""
    text = str(location)
    if not is_remote(text):
        folder = Path(text)
        if not folder.is_dir():
            msg = f"{folder}: not a folder"
            raise FileRefused(msg)
        return sorted(
            str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv"
        )
    if urlparse(text).scheme in ("http", "https"):
        msg = f"{text}: a web address cannot be listed; give a folder or a bucket prefix"
        raise FileRefused(msg)
    try:
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(text)
        found = fs.glob(root.rstrip("/") + "/*")
    except ImportError as exc:
        msg = (
            f"{text}: listing this kind of URL needs an extra package ({exc.name}); see the README"
        )
        raise FileRefused(msg) from None
    protocol = urlparse(text).scheme
    return sorted(f"{protocol}://{path}" for path in found if str(path).lower().endswith(".csv"))
