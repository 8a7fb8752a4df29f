"""The run summary (counts computed from frames), the error CSV, and markdown for artifacts."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mdpipe.errors import SKIP_REASONS, empty_errors
from mdpipe.source import ROW, Source, cell_column

_SKIP = [str(r) for r in SKIP_REASONS]


@dataclass(frozen=True)
class RunSummary:
    """What an import did. processed = imported + updated + skipped + failed, by construction."""

    kind: str
    status: str
    run_id: int | None
    file_name: str
    processed: int
    imported: int
    updated: int
    skipped: int
    failed: int
    reasons: dict[str, int]
    ignored_columns: list[str]
    mapped_columns: dict[str, str] = field(default_factory=dict)
    """CSV header -> field, as the mapping matched them (shown, not part of --json)."""
    normalised_phones: int = 0
    conversations_created: int = 0
    dropped_attachments: int = 0
    dry_run: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    errors: pl.DataFrame = field(default_factory=empty_errors, repr=False, compare=False)
    preview: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False, compare=False)
    """The first rows to load, as they would be stored (shown by a dry run)."""

    def as_json(self) -> dict[str, Any]:
        """The `--json` object: the keys the kind promises, nothing else."""
        keys = ["run_id", "status", "processed", "imported"]
        if self.kind == "contacts":
            keys += ["updated", "skipped", "failed", "normalised_phones"]
        else:
            keys += ["skipped", "failed", "conversations_created", "dropped_attachments"]
        keys += ["ignored_columns", "reasons"]
        return {k: getattr(self, k) for k in keys}

    def counts(self) -> dict[str, Any]:
        """The columns of the run record this summary fills."""
        return {
            k: getattr(self, k)
            for k in (
                "processed",
                "imported",
                "updated",
                "skipped",
                "failed",
                "normalised_phones",
                "conversations_created",
                "dropped_attachments",
                "reasons",
                "ignored_columns",
                "timings",
            )
        }


def summarise_run(
    *,
    kind: str,
    file_name: str,
    processed: int,
    outcomes: pl.DataFrame,
    errors: pl.DataFrame,
    ignored_columns: Sequence[str],
    mapped_columns: Mapping[str, str] | None = None,
    run_id: int | None,
    dry_run: bool,
    status: str = "completed",
    extra: Mapping[str, int] | None = None,
    timings: Mapping[str, float] | None = None,
    preview: pl.DataFrame | None = None,
) -> RunSummary:
    """The summary from the frames: `outcomes` (row, outcome in imported/updated) and `errors`."""
    per_row = errors.group_by(ROW).agg((~pl.col("reason").is_in(_SKIP)).any().alias("failed"))
    failed = per_row.filter(pl.col("failed")).height
    skipped = per_row.height - failed
    imported = outcomes.filter(pl.col("outcome") == "imported").height
    updated = outcomes.filter(pl.col("outcome") == "updated").height
    if (
        imported + updated + skipped + failed != processed
        or outcomes.join(per_row, on=ROW, how="semi").height
    ):
        msg = (
            f"internal error: buckets do not add up: processed {processed} != imported {imported} "
            f"+ updated {updated} + skipped {skipped} + failed {failed}"
        )
        raise AssertionError(msg)
    reasons = {
        str(reason): count
        for reason, count in errors.unique([ROW, "reason"])
        .group_by("reason")
        .len()
        .sort("reason")
        .iter_rows()
    }
    return RunSummary(
        kind=kind,
        status=status,
        run_id=run_id,
        file_name=file_name,
        processed=processed,
        imported=imported,
        updated=updated,
        skipped=skipped,
        failed=failed,
        reasons=reasons,
        ignored_columns=list(ignored_columns),
        mapped_columns=dict(mapped_columns or {}),
        dry_run=dry_run,
        timings={k: round(v, 3) for k, v in (timings or {}).items()},
        errors=errors,
        preview=preview if preview is not None else pl.DataFrame(),
        **dict(extra or {}),
    )


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = r"^[+-]?\d+([.,]\d+)?$"
PHONE_LIKE = r"^\+?[\d\s().\-]+$"


def neutralise_formulas(cell: pl.Expr) -> pl.Expr:
    """Cells a spreadsheet would run as a formula, prefixed with ' (plain numbers and phones kept)."""
    risky = pl.any_horizontal(cell.str.starts_with(s) for s in FORMULA_START)
    safe = cell.str.contains(PLAIN_NUMBER) | cell.str.contains(PHONE_LIKE)
    return pl.when(risky & ~safe).then(pl.lit("'") + cell).otherwise(cell)


def error_rows(source: Source, errors: pl.DataFrame) -> pl.DataFrame:
    """The failed and skipped rows: original cells, then row, reason, detail (one line a row)."""
    per_row = errors.group_by(ROW, maintain_order=True).agg(
        pl.col("reason").unique(maintain_order=True).str.join("; "),
        pl.concat_str(
            [pl.col("column").fill_null(""), pl.col("detail").fill_null("")], separator=": "
        )
        .str.strip_prefix(": ")
        .str.join("; ")
        .alias("detail"),
    )
    cells = [cell_column(i) for i in range(len(source.headers))]
    return (
        source.cells.join(per_row, on=ROW, how="inner")
        .sort(ROW)
        .select(*(neutralise_formulas(pl.col(c)).alias(c) for c in cells), ROW, "reason", "detail")
    )


def write_errors_csv(source: Source, errors: pl.DataFrame, path: str | Path) -> int:
    """Write the error CSV, ready to fix and re-upload; returns the rows written."""
    rows = error_rows(source, errors)
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerow([*source.headers, "row", "reason", "detail"])
    with path.open("ab") as handle:
        rows.write_csv(handle, include_header=False)
    return rows.height


def summary_markdown(summary: RunSummary, *, errors_hint: str | None = None) -> str:
    """The summary as markdown: counts, reasons, ignored columns, timings."""
    lines = [
        f"# {summary.kind.capitalize()} import: {summary.file_name}",
        "",
        f"Status: **{summary.status}**"
        + (" (dry run: nothing was written)" if summary.dry_run else ""),
        "",
        "| processed | imported | updated | skipped | failed |",
        "|---:|---:|---:|---:|---:|",
        f"| {summary.processed} | {summary.imported} | {summary.updated} | {summary.skipped} | {summary.failed} |",
        "",
    ]
    if summary.kind == "contacts":
        lines.append(f"Phone numbers normalised: {summary.normalised_phones}")
    else:
        lines.append(f"Conversations created: {summary.conversations_created}")
        lines.append(f"Attachments dropped: {summary.dropped_attachments}")
    if summary.reasons:
        lines += ["", "| reason | rows |", "|---|---:|"]
        lines += [f"| {reason} | {count} |" for reason, count in summary.reasons.items()]
    if summary.mapped_columns:
        lines += ["", "| CSV column | field |", "|---|---|"]
        lines += [f"| {header} | {name} |" for header, name in summary.mapped_columns.items()]
    if summary.dry_run and summary.preview.height:
        lines += [
            "",
            "The first rows as they would be stored:",
            "",
            *markdown_table(summary.preview),
        ]
    ignored = ", ".join(summary.ignored_columns) or "none"
    lines += ["", f"Ignored columns: {ignored}"]
    if summary.timings:
        lines += [
            "",
            "Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in summary.timings.items()),
        ]
    if errors_hint:
        lines += ["", errors_hint]
    return "\n".join(lines) + "\n"


def markdown_table(frame: pl.DataFrame) -> list[str]:
    """The lines of a markdown table of `frame` (pipes and line breaks in cells escaped)."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")

    return [
        "| " + " | ".join(frame.columns) + " |",
        "|" + "---|" * frame.width,
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()),
    ]


def summary_table(summary: RunSummary) -> str:
    """The summary as plain text for a terminal."""
    rows = [
        ("run", str(summary.run_id) if summary.run_id is not None else "- (dry run)"),
        ("status", summary.status),
        ("processed", f"{summary.processed:,}"),
        ("imported", f"{summary.imported:,}"),
    ]
    if summary.kind == "contacts":
        rows += [("updated", f"{summary.updated:,}")]
    rows += [("skipped", f"{summary.skipped:,}"), ("failed", f"{summary.failed:,}")]
    if summary.kind == "contacts":
        rows += [("phones normalised", f"{summary.normalised_phones:,}")]
    else:
        rows += [
            ("conversations created", f"{summary.conversations_created:,}"),
            ("attachments dropped", f"{summary.dropped_attachments:,}"),
        ]
    rows += [(f"  {reason}", f"{count:,}") for reason, count in summary.reasons.items()]
    rows += [
        ("mapped columns", ", ".join(f"{h} -> {f}" for h, f in summary.mapped_columns.items())),
        ("ignored columns", ", ".join(summary.ignored_columns) or "none"),
    ]
    width = max(len(k) for k, _ in rows)
    title = f"{summary.kind} import of {summary.file_name}" + (
        " (dry run)" if summary.dry_run else ""
    )
    return "\n".join([title, *(f"{k.ljust(width)}  {v}" for k, v in rows)])
