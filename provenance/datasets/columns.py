"""What a dataset row's columns mean: the ones the product understands, per-row signals, and everything else kept
as the row's extra columns (JSON on the asset)."""

from __future__ import annotations

import json
import math
from collections.abc import Set as AbstractSet
from datetime import date, datetime

URL_COLUMNS = ("url", "URL")
CAPTION_COLUMNS = ("caption", "text", "TEXT")
AUTHOR_COLUMNS = ("author", "creator", "artist")
LICENCE_COLUMNS = ("licence", "license", "LICENSE")
PATH_COLUMNS = ("local_path", "path", "filepath", "file")
SIGNAL_COLUMNS: tuple[str, ...] = (
    "x_robots_tag",
    "X-Robots-Tag",
    "x-robots-tag",
    "tdm_reservation",
    "tdm-reservation",
)
SIGNAL_COLUMNS += ("data_mining", "DataMining")
# img2dataset's own bookkeeping, read for what it says (status) rather than kept as extras
STATUS_COLUMNS = ("status", "error_message")
SIZE_COLUMNS = ("width", "height", "WIDTH", "HEIGHT", "original_width", "original_height")
KNOWN = {"key", "title", "exif", "sha256", "__error__"}
KNOWN |= {*URL_COLUMNS, *CAPTION_COLUMNS, *AUTHOR_COLUMNS, *LICENCE_COLUMNS, *PATH_COLUMNS}
KNOWN |= {*SIGNAL_COLUMNS, *STATUS_COLUMNS, *SIZE_COLUMNS}
MAX_EXTRA_CHARS = 20_000  # one row's extras; a huge column (embeddings, a second image) is summarised instead


def first(row: dict, names: tuple[str, ...]) -> str:
    return next((str(row[n]).strip() for n in names if row.get(n) not in (None, "")), "")


def optional_int(row: dict, *names: str) -> int | None:
    """The first of `names` present, as a non-negative integer; ValueError naming the column otherwise."""
    name = next((n for n in names if row.get(n) not in (None, "")), None)
    if name is None:
        return None
    value = row[name]
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} is not a number: {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} is negative: {number}")
    return number


def row_signals(row: dict) -> list[dict]:
    signals = []
    if robots := first(row, ("x_robots_tag", "X-Robots-Tag", "x-robots-tag")):
        signals.append({"kind": "x_robots_tag", "value": robots, "location": "manifest column X-Robots-Tag"})
    if tdm := first(row, ("tdm_reservation", "tdm-reservation")):
        signals.append({"kind": "tdmrep", "value": f"tdm-reservation: {tdm}", "location": "manifest column"})
    if dmi := first(row, ("data_mining", "DataMining")):
        code = dmi.rstrip("/").rsplit("/", 1)[-1]
        signals.append({"kind": "iptc_data_mining", "value": code, "location": "manifest column data_mining"})
    return signals


def exif_of(row: dict) -> dict:
    """img2dataset writes EXIF as a JSON string of tag -> text; a dict is taken as it is."""
    value = row.get("exif")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {"raw": str(value)[:2000]}
    return parsed if isinstance(parsed, dict) else {"raw": str(value)[:2000]}


def extras_of(row: dict, skip: AbstractSet[str] = frozenset()) -> dict:
    """Every column the product does not read itself, JSON-safe, so nothing a dataset says is lost."""
    extras = {
        name: _plain(value)
        for name, value in row.items()
        if name not in KNOWN and name not in skip and not name.startswith("__")
    }
    if len(json.dumps(extras, default=str)) > MAX_EXTRA_CHARS:
        return {name: _summary(value) for name, value in extras.items()}
    return extras


def _plain(value):
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _summary(value):
    text = json.dumps(value, default=str)
    return value if len(text) <= 500 else f"<{len(text)} characters, not kept>"
