"""Leases on a manifest build's units (core/leases.py): one live holder, heartbeats, the reaper restarting a dead
holder's unit, a unit out of attempts failing its build with the reason, the finaliser sent after the last shard,
and the job's units in the API, the admin and the operator dashboard."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core import leases
from core.models import Lease
from tests.training_filter.test_builds import build_parquet, manifest, registry  # noqa: F401 (fixtures)
from training_filter import services
from training_filter.models import ManifestBuild

pytestmark = pytest.mark.django_db


@pytest.fixture
def prepared(manifest_dir, registry, manifest):  # noqa: F811
    build = build_parquet(manifest, enqueue=False)
    services.manifest_build_prepare(build_id=build.pk)
    return build


def shard_lease(build: ManifestBuild, index: int) -> Lease:
    return Lease.objects.get(kind=services.SHARD, unit=services.shard_unit(build.pk, index))


def die(lease_filter) -> None:
    """The holder stopped heartbeating PROVENANT_LEASE_MISSED_BEATS intervals ago."""
    Lease.objects.filter(**lease_filter).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_a_claim_is_refused_while_its_holder_heartbeats_and_granted_once_it_stops(prepared):
    first = services.manifest_shard_claim(build_id=prepared.pk, index=0, worker="a")
    assert first and not services.manifest_shard_claim(build_id=prepared.pk, index=0, worker="b")
    assert leases.lease_renew(first)
    die({"pk": first.id})
    second = services.manifest_shard_claim(build_id=prepared.pk, index=0, worker="b")
    assert second and second.token != first.token
    assert not leases.lease_renew(first)  # the old holder learns it lost the unit
    with pytest.raises(leases.LeaseLost):
        leases.lease_complete(first)
    leases.lease_complete(second)
    assert (shard_lease(prepared, 0).state, shard_lease(prepared, 0).attempts) == ("done", 2)


@pytest.mark.django_db(
    transaction=True
)  # the heartbeat thread has its own connection: it sees committed rows
def test_the_heartbeat_thread_renews_the_lease_while_the_work_runs(prepared, settings):
    settings.PROVENANT_LEASE_HEARTBEAT_S = 0.05
    held = services.manifest_shard_claim(build_id=prepared.pk, index=0, worker="a")
    before = Lease.objects.get(pk=held.id).expires_at
    with leases.leases_heartbeat([held]):
        Lease.objects.filter(pk=held.id).update(expires_at=before - timedelta(hours=1))
        deadline = timezone.now() + timedelta(seconds=5)
        while Lease.objects.get(pk=held.id).expires_at < before and timezone.now() < deadline:
            pass
    assert Lease.objects.get(pk=held.id).expires_at >= before and not held.lost.is_set()


def test_the_reaper_restarts_a_dead_holders_shard_and_the_finaliser_publishes_once(prepared):
    shards = list(prepared.shards.order_by("index").values_list("index", flat=True))
    for index in shards[1:]:
        assert services.manifest_shard_run(build_id=prepared.pk, index=index, worker="cli") == "done"
    assert services.manifest_shard_claim(build_id=prepared.pk, index=0, worker="dead worker")
    assert leases.leases_reap() == {"restarted": 0, "failed": 0, "sent": 0}  # alive: nothing to do
    die({"kind": services.SHARD})
    assert leases.leases_reap() == {"restarted": 1, "failed": 0, "sent": 1}  # sent and run (eager)
    prepared.refresh_from_db()
    assert prepared.status == "published"
    lease = shard_lease(prepared, 0)
    assert (lease.state, lease.attempts) == ("done", 2) and "dead worker" not in lease.holder
    finalise = Lease.objects.get(kind=services.FINALISE, unit=str(prepared.pk))
    assert (finalise.state, finalise.attempts) == ("done", 1)
    # a message the broker delivers late changes nothing
    assert services.manifest_shard_run(build_id=prepared.pk, index=0, worker="late") == "already-done"
    assert services.manifest_build_finalise(build_id=prepared.pk).content_hash == prepared.content_hash


def test_a_shard_whose_worker_dies_every_time_fails_the_build_with_the_reason(prepared, settings):
    held = services.manifest_shard_claim(build_id=prepared.pk, index=0, worker="oom-killed worker")
    Lease.objects.filter(pk=held.id).update(attempts=settings.PROVENANT_LEASE_MAX_ATTEMPTS)
    die({"pk": held.id})
    assert leases.leases_reap()["failed"] == 1
    prepared.refresh_from_db()
    assert prepared.status == "failed"
    assert "did not finish in 3 attempts" in prepared.error and "oom-killed worker" in prepared.error
    assert set(Lease.objects.filter(job=services.job_key(prepared.pk)).values_list("state", flat=True)) == {
        "failed"
    }
    assert leases.leases_reap() == {"restarted": 0, "failed": 0, "sent": 0}


def test_the_finaliser_is_sent_only_after_the_last_shard(prepared):
    Lease.objects.filter(job=services.job_key(prepared.pk)).update(dispatched_at=None)
    unfinished = Lease.objects.filter(kind=services.SHARD).exclude(unit=services.shard_unit(prepared.pk, 0))
    unfinished.update(state="done")
    Lease.objects.filter(kind=services.SHARD).update(dispatched_at=timezone.now())
    assert leases.leases_dispatch(job=services.job_key(prepared.pk)) == 0
    assert services.manifest_shard_run(build_id=prepared.pk, index=0, worker="w") == "done"
    prepared.refresh_from_db()
    assert prepared.status == "published"  # the last shard sent the finaliser (eager)


def test_staff_read_a_jobs_units_with_holder_heartbeat_and_attempts(prepared):
    held = services.manifest_shard_claim(build_id=prepared.pk, index=0, worker="celery@w1 pid 7")
    staff = get_user_model().objects.create_superuser("op", "op@example.org", "a-long-pass-phrase-9")
    stranger = get_user_model().objects.create_user("ada", "ada@example.org", "a-long-pass-phrase-9")
    client = Client()
    url = reverse("job-units") + f"?job={services.job_key(prepared.pk)}&state=held"
    assert client.get(url).status_code in (401, 403)
    client.force_login(stranger)
    assert client.get(url).status_code == 403
    client.force_login(staff)
    body = client.get(url).json()
    assert body["count"] == 1
    unit = body["results"][0]
    assert (unit["holder"], unit["attempts"], unit["alive"], unit["state"]) == (
        "celery@w1 pid 7",
        1,
        True,
        "held",
    )
    assert unit["heartbeat_at"] and unit["id"] == held.id
    page = client.get(reverse("web:dashboard")).content.decode()
    assert "Work in progress" in page and "celery@w1 pid 7" in page
    admin = client.get(reverse("admin:core_lease_changelist") + f"?job={services.job_key(prepared.pk)}")
    assert admin.status_code == 200 and "celery@w1 pid 7" in admin.content.decode()
