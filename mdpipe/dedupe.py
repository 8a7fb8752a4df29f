"""Plan what happens to each valid row: create, update, or skip as a duplicate.

Everything is a vectorised join against the workspace's existing keys or a
window over the file; no query per row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import polars as pl

from mdpipe.errors import Reason, concat_errors, errors_where

OnDuplicate = Literal["skip", "update"]


@dataclass(frozen=True)
class ContactPlan:
    """Rows to insert, rows to update (with `contact_id`), and the rows skipped or failed."""

    new: pl.DataFrame
    updates: pl.DataFrame
    errors: pl.DataFrame


def first_row_over(key: str) -> pl.Expr:
    """The earliest row having the same non-null `key` (null where the key is null)."""
    return pl.when(pl.col(key).is_not_null()).then(pl.col("row").min().over(key))


def plan_contacts(
    rows: pl.DataFrame,
    existing: pl.DataFrame,
    *,
    on_duplicate: OnDuplicate,
    headers: Mapping[str, str],
) -> ContactPlan:
    """The plan for valid contact rows against `existing` (id, email_key, phone)."""
    seen = rows.with_columns(
        first_row_over("email_key").alias("_email_first"),
        first_row_over("phone").alias("_phone_first"),
    )
    email_repeat = pl.col("_email_first") < pl.col("row")
    phone_repeat = pl.col("_phone_first") < pl.col("row")
    in_file = errors_where(
        seen,
        email_repeat | phone_repeat,
        reason=Reason.DUPLICATE_IN_FILE,
        column=_header_of(email_repeat, headers),
        value=pl.when(email_repeat).then(pl.col("email")).otherwise(pl.col("phone")),
        detail=pl.when(email_repeat)
        .then(pl.format("same email as row {}", pl.col("_email_first")))
        .otherwise(pl.format("same phone as row {}", pl.col("_phone_first"))),
    )
    first_seen = seen.filter(~(email_repeat.fill_null(False) | phone_repeat.fill_null(False)))

    by_email = existing.select(pl.col("id").alias("_id_by_email"), "email_key").drop_nulls(
        "email_key"
    )
    by_phone = existing.select(pl.col("id").alias("_id_by_phone"), "phone").drop_nulls("phone")
    matched = (
        first_seen.join(by_email, on="email_key", how="left")
        .join(by_phone, on="phone", how="left")
        .with_columns(pl.coalesce("_id_by_email", "_id_by_phone").alias("contact_id"))
    )
    conflict = (
        pl.col("_id_by_email").is_not_null()
        & pl.col("_id_by_phone").is_not_null()
        & (pl.col("_id_by_email") != pl.col("_id_by_phone"))
    )
    conflicts = errors_where(
        matched,
        conflict,
        reason=Reason.CONFLICTING_CONTACTS,
        column=headers.get("email"),
        value=pl.col("email"),
        detail=pl.format(
            "email belongs to contact #{}, phone to contact #{}",
            pl.col("_id_by_email"),
            pl.col("_id_by_phone"),
        ),
    )
    matched = matched.filter(~conflict.fill_null(False))
    existing_rows = matched.filter(pl.col("contact_id").is_not_null()).with_columns(
        pl.col("row").min().over("contact_id").alias("_contact_first"),
        pl.lit(False).alias("_freed"),
    )
    if on_duplicate == "update":
        existing_rows = _free_rows_whose_key_moves(existing_rows, existing)
    repeat_target = (pl.col("_contact_first") < pl.col("row")) & ~pl.col("_freed")
    same_target = errors_where(
        existing_rows,
        repeat_target,
        reason=Reason.DUPLICATE_IN_FILE,
        column=_header_of(pl.col("_id_by_email").is_not_null(), headers),
        value=pl.coalesce("email", "phone"),
        detail=pl.format(
            "matches the same existing contact #{} as row {}",
            pl.col("contact_id"),
            pl.col("_contact_first"),
        ),
    )
    freed = existing_rows.filter(pl.col("_freed"))
    existing_rows = existing_rows.filter(~repeat_target & ~pl.col("_freed"))
    skipped_existing = errors_where(
        existing_rows,
        pl.lit(on_duplicate == "skip"),
        reason=Reason.DUPLICATE_EXISTING,
        column=_header_of(pl.col("_id_by_email").is_not_null(), headers),
        value=pl.when(pl.col("_id_by_email").is_not_null())
        .then(pl.col("email"))
        .otherwise(pl.col("phone")),
        detail=pl.format(
            "matches existing contact #{} by {}",
            pl.col("contact_id"),
            pl.when(pl.col("_id_by_email").is_not_null())
            .then(pl.lit("email"))
            .otherwise(pl.lit("phone")),
        ),
    )
    updates = existing_rows if on_duplicate == "update" else existing_rows.clear()
    return ContactPlan(
        new=pl.concat(
            [
                matched.filter(pl.col("contact_id").is_null()).select(rows.columns),
                freed.select(rows.columns),
            ]
        ),
        updates=updates.select("contact_id", *rows.columns),
        errors=concat_errors([in_file, conflicts, same_target, skipped_existing]),
    )


def _free_rows_whose_key_moves(targeting: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """Mark `_freed` the later rows of a contact that its first row moves away from them.

    The first row matching a stored contact updates it; a later row matched it by the
    phone (or email) that this update replaces. After the update nothing holds that value
    any more, so the later row is a new contact, not a repeat (in-file repeats of the first
    row's own values were removed before). Inserts run after updates, so the value is free.
    """
    first = targeting.filter(pl.col("row") == pl.col("_contact_first"))
    after_update = first.join(
        existing.select(
            pl.col("id").alias("contact_id"),
            pl.col("email_key").alias("_old_email"),
            pl.col("phone").alias("_old_phone"),
        ),
        on="contact_id",
        how="left",
    ).select(
        "contact_id",
        pl.coalesce("email_key", "_old_email").alias("_kept_email"),
        pl.coalesce("phone", "_old_phone").alias("_kept_phone"),
    )
    still_matches = (pl.col("email_key") == pl.col("_kept_email")).fill_null(False) | (
        pl.col("phone") == pl.col("_kept_phone")
    ).fill_null(False)
    return (
        targeting.join(after_update, on="contact_id", how="left")
        .with_columns(((pl.col("row") > pl.col("_contact_first")) & ~still_matches).alias("_freed"))
        .drop("_kept_email", "_kept_phone")
    )


def _header_of(by_email: pl.Expr, headers: Mapping[str, str]) -> pl.Expr:
    """The email column's header where `by_email` holds, else the phone column's."""
    return (
        pl.when(by_email).then(pl.lit(headers.get("email"))).otherwise(pl.lit(headers.get("phone")))
    )


@dataclass(frozen=True)
class MessagePlan:
    """Messages to insert and the rows skipped as repeats within the file."""

    new: pl.DataFrame
    errors: pl.DataFrame


MESSAGE_IDENTITY = ("channel_id", "participants_key", "direction", "sent_at", "text")


def plan_messages(rows: pl.DataFrame, *, headers: Mapping[str, str]) -> MessagePlan:
    """Repeats inside the file: same conversation, direction, instant and text, or the same
    external id on the same channel, as an earlier valid row. The database's unique keys
    decide against what is already stored."""
    seen = rows.with_columns(
        pl.col("row").min().over(MESSAGE_IDENTITY).alias("_same_first"),
        pl.when(pl.col("external_id").is_not_null())
        .then(pl.col("row").min().over("channel_id", "external_id"))
        .alias("_id_first"),
    )
    same = pl.col("_same_first") < pl.col("row")
    same_id = (pl.col("_id_first") < pl.col("row")).fill_null(False)
    repeats = errors_where(
        seen,
        same | same_id,
        reason=Reason.DUPLICATE_IN_FILE,
        column=pl.when(same)
        .then(pl.lit(headers.get("text")))
        .otherwise(pl.lit(headers.get("external_id"))),
        value=pl.when(same).then(pl.col("text")).otherwise(pl.col("external_id")),
        detail=pl.when(same)
        .then(pl.format("same message as row {}", pl.col("_same_first")))
        .otherwise(pl.format("same external id as row {}", pl.col("_id_first"))),
    )
    return MessagePlan(new=seen.filter(~(same | same_id)).select(rows.columns), errors=repeats)
