from django.contrib import admin

from generator.models import AttributionRecord, GeneratedImage, GeneratorModel


@admin.register(GeneratorModel)
class GeneratorModelAdmin(admin.ModelAdmin):
    list_display = ["version", "status", "manifest_build_id", "trained_at", "steps_done", "stale_at"]
    list_filter = ["status"]
    readonly_fields = ["training_asset_ids", "training_contributors", "config"]


@admin.register(GeneratedImage)
class GeneratedImageAdmin(admin.ModelAdmin):
    list_display = ["id", "model", "prompt", "seed", "created_by", "override_stale", "created_at"]


@admin.register(AttributionRecord)
class AttributionRecordAdmin(admin.ModelAdmin):
    list_display = ["image", "model", "method", "method_version", "created_at"]
    list_filter = ["method"]
