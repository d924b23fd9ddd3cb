from django.contrib import admin

from core.admin import job_units_link
from provenance.models import Asset, Collection, Contributor, ContributorAlias, IngestRun, IngestShard, Signal


class ContributorAliasInline(admin.TabularInline):
    model = ContributorAlias
    extra = 0


@admin.register(Contributor)
class ContributorAdmin(admin.ModelAdmin):
    list_display = ["display_name", "name_key", "created_at"]
    search_fields = ["display_name", "aliases__raw_name"]
    inlines = [ContributorAliasInline]


@admin.register(ContributorAlias)
class ContributorAliasAdmin(admin.ModelAdmin):
    list_display = ["raw_name", "contributor"]
    search_fields = ["raw_name", "contributor__display_name"]
    autocomplete_fields = ["contributor"]


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]


class SignalInline(admin.TabularInline):
    model = Signal
    extra = 0


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "contributor", "collection", "format", "width", "height", "licence"]
    list_filter = ["collection", "format"]
    search_fields = ["title", "source", "sha256", "creator_raw", "contributor__display_name"]
    raw_id_fields = ["contributor"]
    inlines = [SignalInline]


@admin.register(Signal)
class SignalAdmin(admin.ModelAdmin):
    list_display = ["kind", "value", "asset", "domain", "url", "location"]
    list_filter = ["kind"]
    raw_id_fields = ["asset"]


class IngestShardInline(admin.TabularInline):
    model = IngestShard
    extra = 0
    fields = readonly_fields = ("index", "path", "status", "rows_done", "rows_total", "error")


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    inlines = [IngestShardInline]
    list_display = [
        "id",
        "collection",
        "path",
        "layout",
        "status",
        "processed",
        "new",
        "skipped",
        "failed",
        "images_per_second",
    ]
    list_filter = ["status", "collection"]
    readonly_fields = ["errors", "not_downloaded", "units"]

    @admin.display(description="units (holder, heartbeat, attempts)")
    def units(self, run: IngestRun) -> str:
        from provenance.services import job_key

        return job_units_link(job_key(run.pk))
