from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.models import Lease


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    """Every unit of long work: who holds it, its last heartbeat, its attempts (read-only: the workers write)."""

    list_display = [
        "job",
        "kind",
        "unit",
        "state",
        "holder",
        "heartbeat_at",
        "expires_at",
        "attempts",
        "error",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["job", "unit", "holder"]
    readonly_fields = [f.name for f in Lease._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


def job_units_link(job: str) -> str:
    """A link from a job's admin page to its units' leases."""
    url = reverse("admin:core_lease_changelist") + f"?job={job}"
    return format_html('<a href="{}">units of {}</a>', url, job)
