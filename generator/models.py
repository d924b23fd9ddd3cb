"""Generator models (trained from a clean manifest, with lineage), generated images, and the attribution ledger."""

from django.conf import settings
from django.db import models

from core.models import TimeStampedModel


class GeneratorModel(TimeStampedModel):
    class Status(models.TextChoices):
        TRAINING = "training"
        READY = "ready"
        STALE = "stale"  # a training work gained an active opt-out: retrain on the next clean manifest
        FAILED = "failed"

    version = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRAINING, db_index=True)
    # --- lineage: the published manifest build it was trained on (id + content hash; the folder for re-reading) ---
    manifest_build_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    manifest_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the manifest content read"
    )
    manifest_path = models.CharField(max_length=2000, blank=True)
    training_asset_ids = models.JSONField(
        default=list, blank=True, help_text="Asset ids of every training work"
    )
    training_contributors = models.JSONField(
        default=list, blank=True, help_text='[{"label", "contributor_id", "works"}] in attribution order'
    )
    # --- how it was trained and where its files are ---
    config = models.JSONField(default=dict, blank=True)
    run_dir = models.CharField(max_length=2000, blank=True)
    checkpoint_path = models.CharField(max_length=2000, blank=True)
    attribution_path = models.CharField(max_length=2000, blank=True)
    steps_done = models.PositiveIntegerField(default=0)
    training_seconds = models.FloatField(null=True, blank=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # --- staleness ---
    stale_at = models.DateTimeField(null=True, blank=True)
    stale_reason = models.TextField(blank=True)
    stale_optout_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"generator {self.version} ({self.status})"


class GeneratedImage(TimeStampedModel):
    model = models.ForeignKey(GeneratorModel, on_delete=models.PROTECT, related_name="images")
    image = models.FileField(upload_to="generated/%Y/%m/")
    prompt = models.TextField()
    seed = models.BigIntegerField()
    resolution = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="generated_images",
    )
    # an operator generated with a stale model on purpose: who, and that it was deliberate
    override_stale = models.BooleanField(default=False)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"image {self.pk} by {self.model.version} ({self.prompt[:40]!r}, seed {self.seed})"


class AttributionRecord(TimeStampedModel):
    """The ledger: one row per generated image and method. Shares sum to 1; raw scores keep the share policy open."""

    class Method(models.TextChoices):
        GRADIENT = "gradient"  # influence (D-TRAK-style projected gradients)
        SIMILARITY = "similarity"  # style similarity only: never shown as influence

    image = models.ForeignKey(GeneratedImage, on_delete=models.CASCADE, related_name="attributions")
    model = models.ForeignKey(GeneratorModel, on_delete=models.PROTECT, related_name="attributions")
    method = models.CharField(max_length=20, choices=Method.choices)
    method_version = models.CharField(max_length=100)
    shares = models.JSONField(help_text='{"<contributor label>": share, ..., "others": share}, summing to 1')
    raw_scores = models.JSONField(help_text='{"<contributor label>": score} for every training contributor')

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "method"], name="attribution_unique_image_method")
        ]

    @property
    def label(self) -> str:
        return "influence" if self.method == self.Method.GRADIENT else "similarity"
