"""Job state of indexing runs. The vectors themselves live in shards on disk (see embeddings/search/index.py)."""

from django.db import models

from core.models import TimeStampedModel


class IndexRun(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Kind(models.TextChoices):
        ALL = "all"  # works (hashes, keypoints, thumbnails, embeddings) and their parts
        WORKS = "works"  # works only: their parts follow in a background "parts" run
        PARTS = "parts"

    collection = models.ForeignKey(
        "provenance.Collection", on_delete=models.CASCADE, related_name="index_runs"
    )
    space_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ALL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    embedded = models.PositiveIntegerField(default=0)
    # works whose parts were embedded (embeddings.search.parts)
    parts_embedded = models.PositiveIntegerField(default=0)
    hashed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{"asset_id": ..., "reason": ...}], capped
    # Celery batches (index_start): several workers share a collection, one batch each
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    index_kind = models.CharField(max_length=20, blank=True)
    index_total = models.PositiveIntegerField(default=0)
    images_per_second = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"index {self.collection} in {self.space_id} ({self.status})"
