"""Reads: builds visible to a user, a published file's path (traversal-safe), and diffs between two builds."""

from __future__ import annotations

from pathlib import Path

from django.db.models import QuerySet

from core.exceptions import ApplicationError
from core.permissions import is_operator
from training_filter.models import ManifestBuild


def manifest_build_list(*, status: str = "") -> QuerySet[ManifestBuild]:
    builds = ManifestBuild.objects.all().order_by("-id")
    return builds.filter(status=status) if status else builds


def manifest_builds_visible_to(user, *, status: str = "") -> QuerySet[ManifestBuild]:
    """Operators see every build; any other account sees the published ones only."""
    builds = manifest_build_list(status=status)
    return builds if is_operator(user) else builds.filter(status=ManifestBuild.Status.PUBLISHED)


def manifest_build_visible_get(*, build_id: int, user) -> ManifestBuild:
    """A build this account may see; another one answers 404, as one that does not exist does."""
    build = manifest_builds_visible_to(user).filter(pk=build_id).first()
    if build is None:
        raise ApplicationError(f"No manifest build {build_id}.", status_code=404)
    return build


def manifest_build_get(*, build_id: int) -> ManifestBuild:
    try:
        return ManifestBuild.objects.get(pk=build_id)
    except ManifestBuild.DoesNotExist:
        raise ApplicationError(f"No manifest build {build_id}.", status_code=404) from None


def published_build(build_id: int) -> ManifestBuild:
    build = manifest_build_get(build_id=build_id)
    if build.status != ManifestBuild.Status.PUBLISHED:
        raise ApplicationError(f"Build {build_id} is {build.status}, not published.", status_code=409)
    return build


def manifest_build_files(*, build_id: int) -> list[str]:
    root = Path(published_build(build_id).output_path)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def manifest_file_path(*, build_id: int, name: str) -> Path:
    """The file `name` inside the build's folder; anything that resolves outside it is refused."""
    root = Path(published_build(build_id).output_path).resolve()
    candidate = (root / name).resolve()
    if not name or not candidate.is_relative_to(root) or not candidate.is_file():
        raise ApplicationError(f"No file {name!r} in build {build_id}.", status_code=404)
    return candidate


def manifest_build_diff(*, old_id: int, new_id: int, limit: int | None = 1000) -> dict:
    """Keys in the new build but not the old (added) and the reverse (removed), in key order."""
    import duckdb

    old, new = published_build(old_id), published_build(new_id)
    con = duckdb.connect(config={"threads": 2, "memory_limit": "1GB"})
    sources = {
        "old": f"{Path(old.output_path) / 'data' / '*.parquet'}",
        "new": f"{Path(new.output_path) / 'data' / '*.parquet'}",
    }
    result: dict = {"old": old_id, "new": new_id}
    for label, (a, b) in {"added": ("new", "old"), "removed": ("old", "new")}.items():
        # uncorrelated NOT IN streams one side and hashes the other (see the scale notes)
        query = (
            "SELECT key FROM read_parquet(?) WHERE key NOT IN (SELECT key FROM read_parquet(?)) ORDER BY key"
        )
        (count,) = con.execute(f"SELECT count(*) FROM ({query})", [sources[a], sources[b]]).fetchone() or (0,)
        rows = con.execute(
            query + (f" LIMIT {int(limit)}" if limit else ""), [sources[a], sources[b]]
        ).fetchall()
        result[f"{label}_count"] = count
        result[label] = [row[0] for row in rows]
    return result
