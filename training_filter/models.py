"""Manifest builds: one row per build (inputs that make it reproducible, progress, outputs) and one per shard."""

from django.conf import settings
from django.db import models

from core.models import TimeStampedModel


class ManifestBuild(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        FINALISING = "finalising"
        PUBLISHED = "published"
        FAILED = "failed"

    class InputKind(models.TextChoices):
        COLLECTION = "collection"
        PARQUET = "parquet"

    # --- everything needed to rebuild byte for byte ---
    input_kind = models.CharField(max_length=20, choices=InputKind.choices)
    input_ref = models.CharField(
        max_length=2000, help_text="collection name, or a Parquet file/folder path or URI"
    )
    input_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the input's content")
    as_of = models.DateTimeField(help_text="opt-out registry and signal cut-off")
    rules = models.JSONField(default=dict, blank=True, help_text="rule set and thresholds used")
    embedding_space = models.CharField(max_length=300, blank=True)
    # --- progress and outcome ---
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    shards_total = models.PositiveIntegerField(default=0)
    shards_done = models.PositiveIntegerField(default=0)
    rows_in = models.BigIntegerField(default=0)
    rows_out = models.BigIntegerField(default=0)
    removed = models.JSONField(default=dict, blank=True, help_text="removed rows by reason")
    output_path = models.CharField(max_length=2000, blank=True)
    content_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the published manifest.json"
    )
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="manifest_builds",
    )
    trigger = models.CharField(max_length=20, default="manual", help_text="manual, api, admin, cli or beat")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"manifest build {self.pk} ({self.input_kind}:{self.input_ref}, {self.status})"


class ManifestShard(models.Model):
    """One shard of a build; who holds it, its heartbeat and its attempts are its lease's (core.Lease)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    build = models.ForeignKey(ManifestBuild, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    # what to read: {"file": ..., "row_groups": [...]} for Parquet, {"id_from": a, "id_to": b} for a collection
    spec = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    rows_in = models.BigIntegerField(default=0)
    rows_out = models.BigIntegerField(default=0)
    removed = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["build", "index"]
        constraints = [models.UniqueConstraint(fields=["build", "index"], name="manifest_shard_unique_index")]

    def __str__(self) -> str:
        return f"shard {self.index} of build {self.build_id} ({self.status})"
