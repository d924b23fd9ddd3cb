from django.contrib import admin

from websignals.models import SignalCrawl, SiteEvidence


@admin.register(SignalCrawl)
class SignalCrawlAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "status", "hosts_done", "hosts_total", "hosts_unreachable", "created_at"]
    readonly_fields = [f.name for f in SignalCrawl._meta.fields]


@admin.register(SiteEvidence)
class SiteEvidenceAdmin(admin.ModelAdmin):
    # evidence is what a decision was made from: read-only, never edited
    list_display = ["host", "document", "outcome", "http_status", "allowed", "rule", "fetched_at"]
    list_filter = ["document", "outcome", "allowed"]
    search_fields = ["host", "url"]
    readonly_fields = [f.name for f in SiteEvidence._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
