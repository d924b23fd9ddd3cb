from django.contrib import admin, messages

from core.admin import job_units_link
from training_filter import services
from training_filter.models import ManifestBuild, ManifestShard


class ManifestShardInline(admin.TabularInline):
    model = ManifestShard
    extra = 0
    can_delete = False
    fields = readonly_fields = ("index", "status", "rows_in", "rows_out", "removed", "error")


@admin.register(ManifestBuild)
class ManifestBuildAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "input_kind",
        "input_ref",
        "status",
        "shards_done",
        "shards_total",
        "rows_out",
        "as_of",
    ]
    list_filter = ["status", "input_kind", "trigger"]
    readonly_fields = [*(f.name for f in ManifestBuild._meta.fields), "units"]
    inlines = [ManifestShardInline]
    actions = ["rebuild_now"]

    @admin.display(description="units (holder, heartbeat, attempts)")
    def units(self, build: ManifestBuild) -> str:
        return job_units_link(services.job_key(build.pk))

    @admin.action(description="Rebuild these inputs now (a new build with the current opt-out state)")
    def rebuild_now(self, request, queryset):
        for build in queryset:
            argument = {"collection": build.input_ref} if build.input_kind == "collection" else {}
            argument = argument or {"input_path": build.input_ref}
            services.manifest_build_create(**argument, user=request.user, trigger="admin")
        messages.info(request, f"{queryset.count()} build(s) queued.")
