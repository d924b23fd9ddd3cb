"""Admin for everything; the operators' review queues are the pending claims and opt-outs, with actions that go
through the services (so history, audit, e-mails and signals happen exactly as through the API).

Claims and opt-outs are read-only here and cannot be added or deleted: a status, an artist or a domain edited in a
form would move ownership or hide works without the gate, the history or the audit log. A signer binding can be
removed (it only ever verifies future claims), and the removal is audited (optout.receivers)."""

from django.contrib import admin, messages

from core.exceptions import ApplicationError
from optout import services
from optout.models import (
    AuditEntry,
    ClaimStatus,
    ContributorClaim,
    DomainClaim,
    OptOut,
    OptOutStateChange,
    SignerBinding,
)


def _run(modeladmin, request, queryset, action) -> None:
    done = 0
    for obj in queryset:
        try:
            action(obj)
            done += 1
        except ApplicationError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
    modeladmin.message_user(request, f"{done} done.")


class ReviewOnlyAdmin(admin.ModelAdmin):
    """Every field read-only; no add, no delete: changes go through the actions (services)."""

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [f.name for f in self.model._meta.concrete_fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ContributorClaim)
class ContributorClaimAdmin(ReviewOnlyAdmin):
    list_display = ["id", "artist", "contributor", "status", "method", "created_at"]
    list_filter = ["status", "method"]
    search_fields = ["artist__username", "contributor__display_name"]
    actions = ["approve", "reject"]

    @admin.action(description="Approve the selected identity claims")
    def approve(self, request, queryset):
        _run(self, request, queryset.filter(status=ClaimStatus.PENDING),
             lambda c: services.contributor_claim_review(claim=c, reviewer=request.user, approve=True))  # fmt: skip

    @admin.action(description="Reject the selected identity claims")
    def reject(self, request, queryset):
        _run(self, request, queryset.filter(status=ClaimStatus.PENDING),
             lambda c: services.contributor_claim_review(claim=c, reviewer=request.user, approve=False))  # fmt: skip


@admin.register(DomainClaim)
class DomainClaimAdmin(ReviewOnlyAdmin):
    list_display = ["id", "artist", "domain", "status", "method", "verified_at"]
    list_filter = ["status", "method"]
    search_fields = ["domain", "artist__username"]


@admin.register(SignerBinding)
class SignerBindingAdmin(admin.ModelAdmin):
    list_display = ["signer", "artist", "created_at"]
    raw_id_fields = ["artist"]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # re-pointing a binding at another artist would hand them the signer's identities unrecorded
        return ["signer", "artist"] if obj is not None else []


class StateChangeInline(admin.TabularInline):
    model = OptOutStateChange
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "at", "actor", "note"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OptOut)
class OptOutAdmin(ReviewOnlyAdmin):
    list_display = ["id", "artist", "scope", "status", "domain", "contributor", "created_at"]
    list_filter = ["status", "scope"]
    search_fields = ["artist__username", "domain"]
    inlines = [StateChangeInline]
    actions = ["approve", "reject"]

    @admin.action(description="Approve (activate) the selected pending opt-outs")
    def approve(self, request, queryset):
        _run(self, request, queryset, lambda o: services.optout_approve(optout=o, operator=request.user))

    @admin.action(description="Reject the selected pending opt-outs")
    def reject(self, request, queryset):
        _run(self, request, queryset, lambda o: services.optout_reject(optout=o, operator=request.user))


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["seq", "event", "created_at", "hash"]
    list_filter = ["event"]

    # the log is append-only: nobody edits or deletes it from the admin
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
