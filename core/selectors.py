"""Reads of the leases: each job's units with holder, last heartbeat and attempts, for the API, admin and dashboard."""

from django.db.models import QuerySet
from django.utils import timezone

from core.models import Lease


def lease_list(*, job: str = "", state: str = "") -> QuerySet[Lease]:
    leases = Lease.objects.all()
    if job:
        leases = leases.filter(job=job)
    if state:
        leases = leases.filter(state=state)
    return leases.order_by("job", "id")


def leases_unfinished(*, limit: int = 50) -> list[Lease]:
    """Units held or waiting, newest jobs first: what the workers are doing now and what waits for one."""
    return list(
        Lease.objects.filter(state__in=[Lease.State.PENDING, Lease.State.HELD]).order_by("-job", "id")[:limit]
    )


def lease_alive(lease: Lease) -> bool:
    return (
        lease.state == Lease.State.HELD and lease.expires_at is not None and lease.expires_at > timezone.now()
    )
