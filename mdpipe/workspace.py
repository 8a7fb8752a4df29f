"""Workspace administration: workspaces, custom property definitions, channels, contact export."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, Engine, insert, select, text

from mdpipe.db.engine import transaction
from mdpipe.db.load import read_frame
from mdpipe.db.tables import channels, property_definitions, workspaces
from mdpipe.errors import SetupError
from mdpipe.mapping import normalise_header
from mdpipe.validate import E164, PROPERTY_TYPES, normalise_phones
from schemas.contacts import PROPERTY_DTYPES, STANDARD_FIELDS

PROPERTY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ -]{0,62}$")


def find_workspace(conn: Connection, name: str) -> int | None:
    """The workspace's id, or None if it does not exist yet."""
    return conn.execute(
        select(workspaces.c.id).where(workspaces.c.name == name)
    ).scalar_one_or_none()


def ensure_workspace(conn: Connection, name: str) -> int:
    """The workspace's id, creating it on first use."""
    found = find_workspace(conn, name)
    if found is not None:
        return found
    # two first imports at once: the unique name decides, both get the same id
    conn.execute(
        text("INSERT INTO workspaces (name) VALUES (:name) ON CONFLICT (name) DO NOTHING"),
        {"name": name},
    )
    return conn.execute(select(workspaces.c.id).where(workspaces.c.name == name)).scalar_one()


def list_properties(conn: Connection, workspace_id: int | None) -> dict[str, str]:
    """Custom property definitions of the workspace: name -> type, in creation order."""
    if workspace_id is None:
        return {}
    rows = conn.execute(
        select(property_definitions.c.name, property_definitions.c.type)
        .where(property_definitions.c.workspace_id == workspace_id)
        .order_by(property_definitions.c.id)
    ).all()
    return {name: kind for name, kind in rows}


def add_property(engine: Engine, workspace: str, name: str, kind: str) -> None:
    """Define a custom contact property; raises SetupError for a bad or taken name."""
    name = name.strip()
    if kind not in PROPERTY_TYPES:
        msg = f"unknown property type {kind!r}; choose one of {', '.join(PROPERTY_TYPES)}"
        raise SetupError(msg)
    if not PROPERTY_NAME.match(name) or "__" in name:
        msg = f"property name {name!r}: use a letter, then letters, digits, spaces, '-' or '_' (up to 63)"
        raise SetupError(msg)
    with transaction(engine) as conn:
        workspace_id = ensure_workspace(conn, workspace)
        taken = [*STANDARD_FIELDS, "row", *list_properties(conn, workspace_id)]
        clash = [t for t in taken if normalise_header(t) == normalise_header(name)]
        if clash:
            msg = f"property name {name!r} is taken by {clash[0]!r}"
            raise SetupError(msg)
        conn.execute(
            insert(property_definitions).values(workspace_id=workspace_id, name=name, type=kind)
        )


def channel_phone(phone: str) -> str:
    """The channel number in E.164; raises SetupError."""
    verdict = normalise_phones(pl.Series([phone.strip()]), default_region=None)
    e164 = verdict["normalised"][0]
    if e164 is None or not E164.match(e164):
        msg = f"channel phone {phone!r}: {verdict['problem'][0]}"
        raise SetupError(msg)
    return e164


def add_channel(engine: Engine, workspace: str, name: str, phone: str) -> None:
    """Create an outbound channel (a line with a phone number); raises SetupError if taken."""
    e164 = channel_phone(phone)
    name = name.strip()
    if not name:
        msg = "a channel needs a name"
        raise SetupError(msg)
    with transaction(engine) as conn:
        workspace_id = ensure_workspace(conn, workspace)
        taken = conn.execute(
            select(channels.c.name, channels.c.phone).where(
                channels.c.workspace_id == workspace_id,
                (channels.c.name == name) | (channels.c.phone == e164),
            )
        ).first()
        if taken:
            msg = f"channel {taken.name!r} ({taken.phone}) already has that name or number"
            raise SetupError(msg)
        conn.execute(insert(channels).values(workspace_id=workspace_id, name=name, phone=e164))


def list_channels(conn: Connection, workspace_id: int | None) -> pl.DataFrame:
    """The workspace's channels: id, name, phone."""
    schema = {"id": pl.Int64(), "name": pl.String(), "phone": pl.String()}
    if workspace_id is None:
        return pl.DataFrame(schema=schema)
    return read_frame(
        conn,
        "SELECT id, name, phone FROM channels WHERE workspace_id = :ws ORDER BY id",
        schema,
        {"ws": workspace_id},
    )


def _property_text(value: pl.Expr, kind: str) -> pl.Expr:
    """A stored property value as the import reads it back (whole numbers without '.0')."""
    if kind == "number":
        whole = value.round(0) == value
        return (
            pl.when(whole)
            .then(value.cast(pl.Int64).cast(pl.String))
            .otherwise(value.cast(pl.String))
        )
    if kind == "boolean":
        return value.cast(pl.String).str.to_lowercase()
    return value.cast(pl.String)


def export_contacts(engine: Engine, workspace: str, destination: Path | None) -> pl.DataFrame:
    """The workspace's contacts as the import reads them: standard fields, then one column a property."""
    with transaction(engine) as conn:
        workspace_id = find_workspace(conn, workspace)
        properties = list_properties(conn, workspace_id)
        frame = read_frame(
            conn,
            "SELECT first_name, last_name, email, phone, company, CAST(properties AS TEXT) "
            "FROM contacts WHERE workspace_id = :ws ORDER BY id",
            {c: pl.String() for c in (*STANDARD_FIELDS, "properties")},
            {"ws": workspace_id if workspace_id is not None else -1},
        )
    if properties:
        dtypes = {
            name: PROPERTY_DTYPES[kind] if kind != "date" else pl.String
            for name, kind in properties.items()
        }
        decoded = frame["properties"].str.json_decode(pl.Struct(dtypes))
        frame = frame.with_columns(decoded.struct.unnest()).with_columns(
            _property_text(pl.col(name), kind).alias(name) for name, kind in properties.items()
        )
    frame = frame.drop("properties")
    if destination is not None:
        frame.write_csv(destination)
    return frame
