"""Settings from the environment, with the product's defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///mdpipe.db"
DEFAULT_MAX_ROWS = 5_000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_WORKSPACE = "default"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = f"{name} must be a whole number (0 = no limit), got {raw!r}"
        raise ValueError(msg) from None
    if value < 0:
        msg = f"{name} must be 0 or more, got {value}"
        raise ValueError(msg)
    return value


def database_url(explicit: str | None = None) -> str:
    """The database URL: the argument, else MDPIPE_DATABASE_URL, else a SQLite file here."""
    return explicit or os.environ.get("MDPIPE_DATABASE_URL") or DEFAULT_DATABASE_URL


@dataclass(frozen=True)
class Limits:
    """File limits; 0 means no limit."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def resolve(cls, *, max_rows: int | None = None, max_bytes: int | None = None) -> Limits:
        """Limits from the arguments, else MDPIPE_MAX_ROWS / MDPIPE_MAX_BYTES, else the defaults."""
        return cls(
            max_rows=max_rows
            if max_rows is not None
            else _env_int("MDPIPE_MAX_ROWS", DEFAULT_MAX_ROWS),
            max_bytes=max_bytes
            if max_bytes is not None
            else _env_int("MDPIPE_MAX_BYTES", DEFAULT_MAX_BYTES),
        )
