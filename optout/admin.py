"""Admin for everything; the operators' review queues are the pending claims and opt-outs, with actions that go
through the services (so history, audit, e-mails and signals happen exactly as through the API)."""

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


@admin.register(ContributorClaim)
class ContributorClaimAdmin(admin.ModelAdmin):
    list_display = ["id", "artist", "contributor", "status", "method", "created_at"]
    list_filter = ["status", "method"]
    search_fields = ["artist__username", "contributor__display_name"]
    raw_id_fields = ["artist", "contributor", "reviewed_by"]
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
class DomainClaimAdmin(admin.ModelAdmin):
    list_display = ["id", "artist", "domain", "status", "method", "verified_at"]
    list_filter = ["status", "method"]
    search_fields = ["domain", "artist__username"]
    raw_id_fields = ["artist"]


@admin.register(SignerBinding)
class SignerBindingAdmin(admin.ModelAdmin):
    list_display = ["signer", "artist", "created_at"]
    raw_id_fields = ["artist"]


class StateChangeInline(admin.TabularInline):
    model = OptOutStateChange
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "at", "actor", "note"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OptOut)
class OptOutAdmin(admin.ModelAdmin):
    list_display = ["id", "artist", "scope", "status", "domain", "contributor", "created_at"]
    list_filter = ["status", "scope"]
    search_fields = ["artist__username", "domain"]
    raw_id_fields = ["artist", "seed_asset", "contributor"]
    readonly_fields = ["status"]  # state changes only through the actions, so history and audit stay whole
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
