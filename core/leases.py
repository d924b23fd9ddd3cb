"""Leases with heartbeats for every unit of long work, and the reaper that restarts the units of a dead worker.

A job (a manifest build, an ingest run, an index run, a training run, a signal crawl) is planned as leases, one per
unit, each naming the Celery task that runs it. A worker claims a unit with a conditional UPDATE (free, or held
past its expiry), gets a fresh token, and renews the expiry from a background thread every
PROVENANT_LEASE_HEARTBEAT_S while it works; every write that ends the unit compares that token, so two holders
never both finish one unit and a message the broker delivers again changes nothing. A lease not renewed for
PROVENANT_LEASE_MISSED_BEATS intervals is dead whatever the broker thinks: the reaper (Celery beat, and each
worker as it starts) gives it back and sends its task again, so recovery never waits for the broker's visibility
timeout and works the same on the filesystem broker, which redelivers nothing. A unit claimed
PROVENANT_LEASE_MAX_ATTEMPTS times without finishing fails its job with the reason."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import F, Q
from django.utils import timezone

from core.models import Lease

log = logging.getLogger(__name__)

State = Lease.State
# job prefix ("manifest_build") -> what marks that job failed, given its id and the reason; filled by the apps
_JOB_FAILED: dict[str, Callable[[int, str], None]] = {}


class LeaseLost(Exception):
    """This worker's claim was taken over (it stopped heartbeating long enough to be declared dead)."""


@dataclass(frozen=True)
class Unit:
    kind: str
    unit: str
    task: str
    args: list = field(default_factory=list)
    after_all: bool = False


@dataclass
class Held:
    """A claimed lease: its row, the token that proves the claim, and a flag the heartbeat sets if it is lost."""

    id: int
    token: str
    holder: str
    lost: threading.Event = field(default_factory=threading.Event)


def register_job(prefix: str, on_failed: Callable[[int, str], None]) -> None:
    """The app that owns jobs named `prefix:<id>` says how such a job is marked failed."""
    _JOB_FAILED[prefix] = on_failed


def job_key(prefix: str, job_id: int) -> str:
    return f"{prefix}:{job_id}"


def lease_ttl() -> timedelta:
    return timedelta(seconds=settings.PROVENANT_LEASE_HEARTBEAT_S * settings.PROVENANT_LEASE_MISSED_BEATS)


def holder_name(task_id: str | None) -> str:
    return f"{socket.gethostname()} pid {os.getpid()} task {task_id or 'local'}"


def leases_plan(*, job: str, units: list[Unit], queue: str = "", run_here: bool = False) -> None:
    """Create the job's leases (once: planning twice keeps the first plan). run_here: the planning process runs
    the units itself (a command line build), so none is sent to a worker unless that process dies."""
    sent = timezone.now() if run_here else None
    rows = [
        Lease(
            job=job,
            kind=u.kind,
            unit=u.unit,
            task=u.task,
            args=u.args,
            queue=queue,
            after_all=u.after_all,
            dispatched_at=sent,
        )
        for u in units
    ]
    Lease.objects.bulk_create(rows, ignore_conflicts=True)


def leases_dispatch(*, job: str) -> int:
    """Send the task of every pending unit of `job` that may start and was not sent yet: the ordinary units,
    and the after-all ones once every other unit has finished (done or failed). Each send is claimed first (dispatched_at from null),
    so concurrent dispatchers never send one unit twice. Call it outside a transaction: the worker that gets the
    message must find the claim committed. Returns how many were sent."""
    pending = Lease.objects.filter(job=job, state=State.PENDING, dispatched_at__isnull=True)
    unfinished = Lease.objects.filter(job=job, after_all=False, state__in=[State.PENDING, State.HELD])
    if not unfinished.exists():
        ready = pending
    else:
        ready = pending.filter(after_all=False)
    sent = 0
    for lease in ready.order_by("id"):
        if Lease.objects.filter(pk=lease.pk, dispatched_at__isnull=True).update(dispatched_at=timezone.now()):
            _send(lease)
            sent += 1
    return sent


def _send(lease: Lease) -> None:
    from celery import current_app

    # the task's module registers it: a web process has not necessarily imported it yet
    importlib.import_module(lease.task.rpartition(".")[0])
    # apply_async rather than send_task: it honours CELERY_TASK_ALWAYS_EAGER
    task = current_app.tasks[lease.task]
    if lease.queue:
        task.apply_async(args=tuple(lease.args), queue=lease.queue)
    else:  # the task's route and the default queue decide
        task.apply_async(args=tuple(lease.args))


def lease_claim(*, kind: str, unit: str, holder: str) -> Held | None:
    """Take the unit if it is pending, or held past its expiry by a worker that stopped heartbeating. None when
    it is done, failed, out of attempts, or held by a live worker."""
    now = timezone.now()
    free = Q(state=State.PENDING) | Q(state=State.HELD, expires_at__lt=now)
    token = uuid.uuid4().hex
    claimed = Lease.objects.filter(
        Q(kind=kind, unit=unit, attempts__lt=settings.PROVENANT_LEASE_MAX_ATTEMPTS) & free
    ).update(
        state=State.HELD,
        holder=holder[:300],
        token=token,
        heartbeat_at=now,
        expires_at=now + lease_ttl(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    return Held(
        id=Lease.objects.values_list("pk", flat=True).get(kind=kind, unit=unit), token=token, holder=holder
    )


def lease_renew(held: Held) -> bool:
    now = timezone.now()
    return bool(
        Lease.objects.filter(pk=held.id, token=held.token, state=State.HELD).update(
            heartbeat_at=now, expires_at=now + lease_ttl()
        )
    )


def lease_complete(held: Held, *, failed: str = "") -> None:
    """Mark the unit finished (done, or failed with a reason: a later rerun of the job starts it again); call it
    inside the transaction that writes the unit's result, which this rolls back (LeaseLost) when another worker
    has claimed the unit since (the token changes on every claim)."""
    done = Lease.objects.filter(pk=held.id, token=held.token).update(
        state=State.FAILED if failed else State.DONE,
        expires_at=None,
        heartbeat_at=timezone.now(),
        error=failed,
    )
    if not done:
        raise LeaseLost(f"lease {held.id} was taken over")


def lease_release(held: Held, *, error: str = "", count_attempt: bool = True) -> None:
    """Give the unit back to be sent again (by the reaper, or at once by the next leases_dispatch)."""
    attempts = F("attempts") if count_attempt else F("attempts") - 1
    Lease.objects.filter(pk=held.id, token=held.token, state=State.HELD).update(
        state=State.PENDING, expires_at=None, dispatched_at=None, error=error[:2000], attempts=attempts
    )


def leases_job_fail(*, job: str, error: str) -> None:
    """The job failed: none of its unfinished units is to be restarted."""
    Lease.objects.filter(job=job, state__in=[State.PENDING, State.HELD]).update(
        state=State.FAILED, expires_at=None, error=error[:2000]
    )


def leases_job_end(*, job: str) -> None:
    """The job ended in the process that planned it: its last steps are not to be sent to a worker."""
    Lease.objects.filter(job=job, after_all=True, state__in=[State.PENDING, State.HELD]).update(
        state=State.DONE, expires_at=None
    )


def leases_job_reopen(*, job: str, run_here: bool = False, done_too: bool = False) -> None:
    """A failed job is run again (an ingest resumes its failed shards): its unfinished units and its last steps
    start afresh; done_too: every unit (their work is idempotent), except those a live worker holds."""
    reopened = Lease.objects.filter(job=job).exclude(state=State.HELD, expires_at__gte=timezone.now())
    if not done_too:
        reopened = reopened.exclude(state=State.DONE, after_all=False)
    reopened.update(
        state=State.PENDING,
        attempts=0,
        error="",
        expires_at=None,
        dispatched_at=timezone.now() if run_here else None,
        token="",
    )


@contextmanager
def lease_hold(*, kind: str, unit: str, holder: str) -> Iterator[Held | None]:
    """Claim the unit and renew the claim from a background thread until the block ends. Yields None when the
    unit is not free (done, or held by a live worker). An exception in the block gives the unit back, counting
    the attempt, for the reaper to restart (or to fail the job once attempts run out)."""
    held = lease_claim(kind=kind, unit=unit, holder=holder)
    if held is None:
        yield None
        return
    with leases_heartbeat([held]):
        try:
            yield held
        except BaseException as exc:
            lease_release(held, error=f"{exc.__class__.__name__}: {exc}")
            raise


@contextmanager
def leases_heartbeat(helds: list[Held]) -> Iterator[None]:
    """Renew every lease in `helds` every PROVENANT_LEASE_HEARTBEAT_S from one background thread (with its own
    database connection) while the block runs; a lease found taken over gets its `lost` flag set."""
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(helds, stop), name="lease-heartbeat", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()


def _heartbeat(helds: list[Held], stop: threading.Event) -> None:
    try:
        while not stop.wait(settings.PROVENANT_LEASE_HEARTBEAT_S):
            close_old_connections()
            for held in helds:
                try:
                    renewed = held.lost.is_set() or lease_renew(held)
                except (
                    DatabaseError
                ) as exc:  # a database blip: the next beat tries again, well within the ttl
                    log.warning("lease %s not renewed: %s", held.id, exc)
                    continue
                if not renewed and not stop.is_set():
                    log.warning("lease %s lost by %s", held.id, held.holder)
                    held.lost.set()
    finally:
        connection.close()  # this thread's own connection


def leases_reap() -> dict[str, int]:
    """Give back the units whose holder stopped heartbeating and send them again; fail the jobs of units out of
    attempts; send units sent long ago but never claimed (their message was lost with a worker)."""
    now = timezone.now()
    counts = {"restarted": 0, "failed": 0, "sent": 0}
    for lease in Lease.objects.filter(state=State.HELD, expires_at__lt=now):
        reason = (
            f"holder {lease.holder} stopped heartbeating (last {lease.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
        dead = Lease.objects.filter(pk=lease.pk, token=lease.token, state=State.HELD, expires_at__lt=now)
        if dead.update(state=State.PENDING, expires_at=None, dispatched_at=None, error=reason[:2000]):
            counts["restarted"] += 1
            log.warning("lease %s (%s %s): %s", lease.pk, lease.kind, lease.unit, reason)
            # its other waiting units may have been left to the dead process (a command line build): send them
            # too; a duplicate message finds its unit held or done and changes nothing
            Lease.objects.filter(job=lease.job, state=State.PENDING).update(dispatched_at=None)
    counts["failed"] = _fail_exhausted()
    never_claimed = now - timedelta(seconds=settings.PROVENANT_LEASE_RESEND_S)
    Lease.objects.filter(state=State.PENDING, dispatched_at__lt=never_claimed).update(dispatched_at=None)
    waiting = Lease.objects.filter(state=State.PENDING, dispatched_at__isnull=True)
    for job in sorted(set(waiting.values_list("job", flat=True))):
        counts["sent"] += leases_dispatch(job=job)
    return counts


def _fail_exhausted() -> int:
    exhausted = Lease.objects.filter(state=State.PENDING, attempts__gte=settings.PROVENANT_LEASE_MAX_ATTEMPTS)
    failed = 0
    for lease in exhausted:
        reason = f"{lease.kind} {lease.unit} did not finish in {lease.attempts} attempts: {lease.error}"
        if Lease.objects.filter(pk=lease.pk, state=State.PENDING).update(state=State.FAILED):
            failed += 1
            _job_failed(lease.job, reason)
    return failed


def _job_failed(job: str, reason: str) -> None:
    prefix, _, job_id = job.partition(":")
    if (
        prefix not in _JOB_FAILED
    ):  # the apps register from their tasks modules, which a worker imports at start
        from celery import current_app

        current_app.loader.import_default_modules()
    on_failed = _JOB_FAILED.get(prefix)
    if on_failed is None:
        log.error("job %s failed (%s) and no app marks it failed", job, reason)
    else:
        on_failed(int(job_id), reason)
    leases_job_fail(job=job, error=reason)
