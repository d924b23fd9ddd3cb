"""Manifest builds: create, prepare (snapshot + shard plan), claim and filter shards, finalise, fail, diff.

Crash safety rests on three rules: every file is written to `*.part` and renamed; every shard and the finalise
step is a lease (core/leases.py) claimed with a conditional UPDATE and renewed by a heartbeat, so a dead worker's
shard is restarted within a minute and a late redelivery changes nothing; and publishing is one os.rename of a
fully written, fsynced folder. Every step is safe to run twice."""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import leases
from core.exceptions import ApplicationError
from optout.services import audit_append
from training_filter.models import ManifestBuild, ManifestShard

# The pipeline (pyarrow, duckdb: a quarter of a second) is imported inside the functions that run in workers, so
# that the web process, which only lists and creates builds, starts without it.

logger = logging.getLogger(__name__)


JOB = "manifest_build"
SHARD, FINALISE = "manifest_shard", "manifest_finalise"


class ShardsNotReady(Exception):
    """The finaliser ran before every shard was done (a duplicate message, or a takeover in flight)."""


def job_key(build_id: int) -> str:
    return leases.job_key(JOB, build_id)


def shard_unit(build_id: int, index: int) -> str:
    return f"{build_id}:{index}"


def build_rules() -> dict:
    from training_filter.pipeline.shard import MATCH_ORDER

    return {
        "match_order": list(MATCH_ORDER),
        "phash_radius": settings.MANIFEST_PHASH_RADIUS,
        "registry_source": settings.MANIFEST_REGISTRY_SOURCE,
        "signal_evaluator": settings.MANIFEST_SIGNAL_EVALUATOR,
        "batch_rows": settings.MANIFEST_BATCH_ROWS,
        "shard_rows": settings.MANIFEST_SHARD_ROWS,
    }


def work_dir(build: ManifestBuild) -> Path:
    return Path(settings.MANIFEST_DIR) / ".work" / f"build-{build.pk:06d}"


def published_dir(build: ManifestBuild) -> Path:
    return Path(settings.MANIFEST_DIR) / f"build-{build.pk:06d}"


def input_path_allowed(input_ref: str) -> bool:
    """Whether a local path (links and `..` resolved) or a remote URI lies under one of MANIFEST_INPUT_ROOTS."""
    roots = [str(root) for root in settings.MANIFEST_INPUT_ROOTS]
    local = input_ref.removeprefix("file://")
    if "://" not in local:
        resolved = Path(local).resolve()
        return any(resolved.is_relative_to(Path(root).resolve()) for root in roots if "://" not in root)
    if "/../" in f"{local}/" or "/./" in f"{local}/":
        return False
    return any(local.startswith(root.rstrip("/") + "/") for root in roots if "://" in root)


def manifest_build_create(
    *,
    collection: str = "",
    input_path: str = "",
    as_of: datetime | None = None,
    user=None,
    trigger: str = "manual",
    enqueue: bool = True,
) -> ManifestBuild:
    from training_filter import sources

    if bool(collection) == bool(input_path):
        raise ApplicationError("Give either a collection name or an input manifest path, not both.")
    if collection:
        sources._collection(collection)
    else:
        try:
            sources.parquet_input.list_files(input_path)
        except (FileNotFoundError, OSError) as exc:
            raise ApplicationError(f"Cannot read the input manifest: {exc}") from exc
    with transaction.atomic():
        build = ManifestBuild.objects.create(
            input_kind=ManifestBuild.InputKind.COLLECTION if collection else ManifestBuild.InputKind.PARQUET,
            input_ref=collection or input_path,
            as_of=as_of or timezone.now(),
            rules=build_rules(),
            embedding_space=f"{settings.CLIP_MODEL}:{settings.CLIP_PRETRAINED}",
            requested_by=user if getattr(user, "is_authenticated", False) else None,
            trigger=trigger,
        )
        if enqueue:
            from training_filter.tasks import enqueue_build

            transaction.on_commit(lambda: enqueue_build(build.pk))
    return build


def manifest_build_prepare(*, build_id: int, dispatch: bool = False) -> list[int] | None:
    """Hash the input, snapshot the registry, plan the shards. Returns the shard indexes still to do,
    or None when the build is already finished. dispatch: send each shard to the workers (Celery); otherwise
    the caller runs them in its own process (the command line)."""
    from training_filter import sources
    from training_filter.pipeline.registry import write_snapshot

    build = ManifestBuild.objects.get(pk=build_id)
    if build.status in (ManifestBuild.Status.PUBLISHED, ManifestBuild.Status.FAILED):
        return None
    if build.status == ManifestBuild.Status.PENDING:
        folder = work_dir(build)
        folder.mkdir(parents=True, exist_ok=True)
        with _input_errors_fail(build_id):
            with _input_hash_in_background(build) as digest:
                specs = sources.plan_shards(build)
                write_snapshot(sources.registry_snapshot_batches(build), folder / "registry.arrow")
            input_hash = digest.result()
        _start(build, input_hash, specs, run_here=not dispatch)
    if dispatch:
        leases.leases_dispatch(job=job_key(build_id))
    pending = ManifestShard.objects.filter(build_id=build_id).exclude(status=ManifestShard.Status.DONE)
    return list(pending.order_by("index").values_list("index", flat=True))


@contextmanager
def _input_hash_in_background(build: ManifestBuild) -> Iterator[Future]:
    """A Parquet input's SHA-256 (a second over a gigabyte; hashlib lets go of the GIL) computed while the
    registry is snapshotted. A collection's hash reads the database, so it stays on this thread."""
    from training_filter import sources

    if build.input_kind != ManifestBuild.InputKind.PARQUET:
        done: Future = Future()
        done.set_result(sources.input_hash(build))
        yield done
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(sources.input_hash, build)


def _start(build: ManifestBuild, digest: str, specs: list[dict], *, run_here: bool) -> None:
    with transaction.atomic():
        # conditional: a redelivered prepare that lost the race leaves the first one's plan alone
        started = ManifestBuild.objects.filter(pk=build.pk, status=ManifestBuild.Status.PENDING).update(
            status=ManifestBuild.Status.RUNNING,
            input_hash=digest,
            shards_total=len(specs),
            started_at=timezone.now(),
        )
        if started:
            ManifestShard.objects.bulk_create(
                [ManifestShard(build=build, index=i, spec=spec) for i, spec in enumerate(specs)]
            )
            leases.leases_plan(
                job=job_key(build.pk), units=_units(build.pk, len(specs)), queue=_queue(), run_here=run_here
            )


def _queue() -> str:
    return settings.MANIFEST_CELERY_QUEUE


def _units(build_id: int, count: int) -> list[leases.Unit]:
    shards = [
        leases.Unit(
            SHARD, shard_unit(build_id, i), "training_filter.tasks.manifest_shard_filter", [build_id, i]
        )
        for i in range(count)
    ]
    finalise = leases.Unit(
        FINALISE, str(build_id), "training_filter.tasks.manifest_build_finalise", [build_id], after_all=True
    )
    return [*shards, finalise]


def manifest_shard_claim(*, build_id: int, index: int, worker: str) -> leases.Held | None:
    """Take the shard's lease: pending, or held by a worker that stopped heartbeating."""
    held = leases.lease_claim(kind=SHARD, unit=shard_unit(build_id, index), holder=worker)
    if held is not None:
        ManifestShard.objects.filter(build_id=build_id, index=index).update(
            status=ManifestShard.Status.RUNNING
        )
    return held


def _shard_registry(build: ManifestBuild):
    from training_filter import sources
    from training_filter.pipeline.registry import load_index

    registry = load_index(str(work_dir(build) / "registry.arrow"), build.rules.get("phash_radius", 4))
    registry.signal_evaluator = sources.domain_signal_evaluator
    return registry


def _shard_paths(build: ManifestBuild, index: int) -> dict[str, Any]:
    folder = work_dir(build)
    return {
        "out_path": folder / f"part-{index:05d}.parquet",
        "removed_path": folder / f"removed-{index:05d}.parquet",
    }


def manifest_shard_run(*, build_id: int, index: int, worker: str) -> str:
    """Filter one shard under its lease. Returns 'done', 'already-done', 'not-running' or 'busy' (another live
    worker holds it); when it was the last shard, the finaliser is sent."""
    shard = ManifestShard.objects.select_related("build").get(build_id=build_id, index=index)
    if shard.status == ManifestShard.Status.DONE:
        return "already-done"
    if shard.build.status != ManifestBuild.Status.RUNNING:
        return "not-running"
    with leases.lease_hold(kind=SHARD, unit=shard_unit(build_id, index), holder=worker) as held:
        if held is None:
            return "busy"
        ManifestShard.objects.filter(pk=shard.pk).update(status=ManifestShard.Status.RUNNING)
        _shard_filter(shard, held)
    leases.leases_dispatch(job=job_key(build_id))
    return "done"


def _shard_filter(shard: ManifestShard, held: leases.Held) -> None:
    from training_filter import sources
    from training_filter.pipeline.shard import filter_shard

    build = shard.build
    registry = _shard_registry(build)
    if settings.MANIFEST_SHARD_SLEEP_S:
        time.sleep(settings.MANIFEST_SHARD_SLEEP_S)  # test hook: a window in which to kill the worker
    with _input_errors_fail(build.pk):
        result = filter_shard(
            sources.read_shard(build, shard.spec), registry, **_shard_paths(build, shard.index)
        )
    _shard_done(shard=shard, held=held, result=result)


def _shard_done(*, shard: ManifestShard, held: leases.Held, result) -> None:
    """The shard's counts and its lease's end in one transaction: a worker whose lease was taken over (it was
    presumed dead) writes nothing."""
    with transaction.atomic():
        leases.lease_complete(held)
        ManifestShard.objects.filter(pk=shard.pk).update(
            status=ManifestShard.Status.DONE,
            rows_in=result.rows_in,
            rows_out=result.rows_out,
            removed=dict(sorted(result.removed.items())),
        )
        done = ManifestShard.objects.filter(build_id=shard.build_id, status=ManifestShard.Status.DONE).count()
        ManifestBuild.objects.filter(pk=shard.build_id).update(shards_done=done)


def manifest_shards_run_local(
    *, build_id: int, indexes: list[int], threads: int, on_done: Callable[[], object] = lambda: None
) -> None:
    """The CLI's build: a Parquet input's shards filtered by `threads` threads of this process, all reading one
    registry index. A shard's heavy steps (Parquet read and write, pyarrow compute, DuckDB hashing, numpy on
    whole batches) let go of the GIL, so threads keep the cores busy without a second interpreter, Django and
    index per process: the whole build's memory is this one process's. This thread claims every shard,
    heartbeats their leases, makes each finished shard's files durable and records it done; the others run only
    the pure pipeline."""
    from training_filter.pipeline.shard import commit_files, filter_parquet_shard

    build = ManifestBuild.objects.get(pk=build_id)
    worker = leases.holder_name(None)
    if threads <= 1 or len(indexes) <= 1 or build.input_kind != ManifestBuild.InputKind.PARQUET:
        for index in indexes:
            manifest_shard_run(build_id=build_id, index=index, worker=worker)
            on_done()
        return
    arguments: dict[str, Any] = {
        "ref": build.input_ref,
        "batch_rows": settings.MANIFEST_BATCH_ROWS,
        "registry_path": str(work_dir(build) / "registry.arrow"),
        "phash_radius": build.rules.get("phash_radius", 4),
        "commit": False,  # this thread commits each shard's files, while the shard's thread starts the next
    }
    _shard_registry(build)  # the index the threads find in load_index's cache, with the signal evaluator set
    shards = ManifestShard.objects.filter(build_id=build_id, index__in=indexes).order_by("index")
    claimed = [(s, manifest_shard_claim(build_id=build_id, index=s.index, worker=worker)) for s in shards]
    held = [(shard, lease) for shard, lease in claimed if lease is not None]
    try:
        with _input_errors_fail(build_id), ThreadPoolExecutor(max_workers=threads) as pool:
            futures = {
                pool.submit(filter_parquet_shard, spec=s.spec, **arguments, **_shard_paths(build, s.index)): (
                    s,
                    h,
                )
                for s, h in held
            }
            # a finished shard's lease leaves the heartbeat (renewing a done lease would call it lost)
            beating = [h for _, h in held]
            try:
                with leases.leases_heartbeat(beating):
                    for future in as_completed(futures):
                        shard, lease = futures[future]
                        result = future.result()
                        commit_files(result)
                        beating.remove(lease)
                        _shard_done(shard=shard, held=lease, result=result)
                        on_done()
            except BaseException:
                pool.shutdown(cancel_futures=True)  # a failed shard fails the build: start no others
                raise
    except BaseException as exc:
        for _, lease in held:
            leases.lease_release(lease, error=f"{exc.__class__.__name__}: {exc}")
        raise


def manifest_build_finalise(*, build_id: int, holder: str = "") -> ManifestBuild:
    """Assemble and publish the build under the finalise lease: one holder publishes, once; a finaliser killed
    half way is restarted by the reaper and finishes the same folder (assemble trusts a renamed one)."""
    build = ManifestBuild.objects.get(pk=build_id)
    if build.status == ManifestBuild.Status.PUBLISHED:
        return build
    if build.status == ManifestBuild.Status.FAILED:
        raise ApplicationError(f"Build {build_id} has failed: {build.error}")
    shards = list(ManifestShard.objects.filter(build_id=build_id).order_by("index"))
    if any(s.status != ManifestShard.Status.DONE for s in shards):
        raise ShardsNotReady(f"build {build_id}: {sum(s.status != 'done' for s in shards)} shards not done")
    with leases.lease_hold(
        kind=FINALISE, unit=str(build_id), holder=holder or leases.holder_name(None)
    ) as held:
        if held is None:  # another worker is finalising it, or has
            return ManifestBuild.objects.get(pk=build_id)
        _publish(build, shards, held)
    shutil.rmtree(work_dir(build), ignore_errors=True)
    return ManifestBuild.objects.get(pk=build_id)


def _publish(build: ManifestBuild, shards: list[ManifestShard], held: leases.Held) -> None:
    build_id = build.pk
    ManifestBuild.objects.filter(pk=build_id, status=ManifestBuild.Status.RUNNING).update(
        status=ManifestBuild.Status.FINALISING
    )
    removed: Counter = Counter()
    for shard in shards:
        removed.update(shard.removed)
    stats = {
        "rows_in": sum(s.rows_in for s in shards),
        "rows_out": sum(s.rows_out for s in shards),
        "removed_by_reason": dict(sorted(removed.items())),
        "shards": len(shards),
    }
    from training_filter.pipeline.publish import assemble

    if settings.MANIFEST_FINALISE_SLEEP_S:
        time.sleep(settings.MANIFEST_FINALISE_SLEEP_S)  # test hook: a window in which to kill the finaliser
    final = published_dir(build)
    content_hash = assemble(
        work_dir=work_dir(build), shard_count=len(shards), stats=stats, params=_params(build), final_dir=final
    )
    with transaction.atomic():
        leases.lease_complete(held)
        ManifestBuild.objects.filter(pk=build_id).update(
            status=ManifestBuild.Status.PUBLISHED,
            rows_in=stats["rows_in"],
            rows_out=stats["rows_out"],
            removed=stats["removed_by_reason"],
            output_path=str(final),
            content_hash=content_hash,
            finished_at=timezone.now(),
            shards_done=len(shards),
        )
        _audit(build_id, content_hash, stats)  # with the status: recorded once, when the publication commits


def _audit(build_id: int, content_hash: str, stats: dict) -> None:
    """Record the publication in the opt-out app's hash-chained audit log."""
    audit_append(
        event="manifest_published", payload={"build": build_id, "content_hash": content_hash, **stats}
    )


def _params(build: ManifestBuild) -> dict:
    """What manifest.json records: the inputs that make the build reproducible (no ids, no clock)."""
    return {
        "input_kind": build.input_kind,
        "input_ref": build.input_ref,
        "input_sha256": build.input_hash,
        "optout_as_of": build.as_of.isoformat(),
        "rules": build.rules,
        "embedding_space": build.embedding_space,
    }


def manifest_build_fail(*, build_id: int, error: str) -> None:
    """The first error wins: a later "task failed" must not hide the reason a person can act on. None of the
    build's units is restarted after this."""
    ManifestBuild.objects.filter(pk=build_id).exclude(
        status__in=[ManifestBuild.Status.PUBLISHED, ManifestBuild.Status.FAILED]
    ).update(status=ManifestBuild.Status.FAILED, error=error[:5000], finished_at=timezone.now())
    leases.leases_job_fail(job=job_key(build_id), error=error)


@contextmanager
def _input_errors_fail(build_id: int) -> Iterator[None]:
    """A bad input column (or an unreadable input file) fails the build with its message, as an
    ApplicationError: never a traceback, never a build left running."""
    from pyarrow import ArrowException

    from training_filter.pipeline.parquet_input import InputError

    try:
        yield
    except (InputError, ArrowException, FileNotFoundError) as exc:
        manifest_build_fail(build_id=build_id, error=str(exc))
        raise ApplicationError(f"The input manifest cannot be used: {exc}") from exc


def manifest_builds_refresh() -> list[ManifestBuild]:
    """Beat: rebuild every published input whose last build's cut-off predates the latest opt-out change."""
    from training_filter import sources

    changed = sources.latest_optout_change()
    if changed is None:
        return []
    created = []
    latest: dict[tuple[str, str], ManifestBuild] = {}
    for build in ManifestBuild.objects.filter(status=ManifestBuild.Status.PUBLISHED).order_by("as_of", "id"):
        latest[(build.input_kind, build.input_ref)] = build
    for (kind, ref), build in sorted(latest.items()):
        if build.as_of >= changed:
            continue
        in_flight = ManifestBuild.objects.filter(input_kind=kind, input_ref=ref, as_of__gte=changed).exclude(
            status=ManifestBuild.Status.FAILED
        )
        if in_flight.exists():
            continue
        argument: dict[str, Any] = (
            {"collection": ref} if kind == ManifestBuild.InputKind.COLLECTION else {"input_path": ref}
        )
        created.append(manifest_build_create(**argument, trigger="beat"))
    return created
