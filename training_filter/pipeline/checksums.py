"""SHA-256 of published files. A shard records its part's checksum beside it while the bytes are still in the page
cache, in its own process, so that publishing does not read every part again on one core."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def record_sha256(source: Path, *, for_path: Path) -> None:
    """Record `source`'s checksum as that of `for_path` (the name it is about to be renamed to). A shard rerun
    writes the same bytes, so a checksum left by a run that crashed before the rename still holds."""
    sidecar = _sidecar(for_path)
    tmp = sidecar.with_name(sidecar.name + ".part")
    tmp.write_text(file_sha256(source), encoding="ascii")
    os.replace(tmp, sidecar)


def recorded_sha256(path: Path) -> str | None:
    try:
        return _sidecar(path).read_text(encoding="ascii")
    except FileNotFoundError:
        return None
