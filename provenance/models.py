"""Who made what, where it came from, and what machine-readable signals it carries."""

from django.db import models

from core.models import TimeStampedModel


class Contributor(TimeStampedModel):
    """A person or studio credited for works. Raw credit strings are kept as aliases; the display name is cleaned."""

    display_name = models.CharField(max_length=300)
    # casefolded, punctuation-free form of the display name: the same person under several spellings meets here
    name_key = models.CharField(max_length=300, unique=True)
    urls = models.JSONField(default=list, blank=True)
    domains = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name


class ContributorAlias(TimeStampedModel):
    """A credit string exactly as found in a file or manifest, linked to the contributor it names."""

    contributor = models.ForeignKey(Contributor, on_delete=models.CASCADE, related_name="aliases")
    raw_name = models.CharField(max_length=500, unique=True)

    class Meta:
        ordering = ["raw_name"]
        verbose_name_plural = "contributor aliases"

    def __str__(self) -> str:
        return self.raw_name


class Collection(TimeStampedModel):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


class Asset(TimeStampedModel):
    """One work as it sits in a collection: a local file or a manifest row (URL)."""

    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="assets")
    # the path (relative to the ingested folder) or URL as ingested; unique within a collection
    source = models.CharField(max_length=2000)
    key = models.CharField(
        max_length=300, blank=True, help_text="img2dataset key, when ingested from a manifest"
    )
    url = models.URLField(max_length=2000, blank=True)
    domain = models.CharField(max_length=255, blank=True, db_index=True)
    local_path = models.CharField(max_length=2000, blank=True, help_text="absolute path of the pixels used")
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    byte_size = models.BigIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    format = models.CharField(max_length=20, blank=True)
    title = models.CharField(max_length=500, blank=True)
    caption = models.TextField(blank=True)
    keywords = models.JSONField(default=list, blank=True)
    licence = models.CharField(max_length=500, blank=True)
    rights = models.CharField(max_length=1000, blank=True)
    creator_raw = models.CharField(max_length=500, blank=True, help_text="credit string exactly as found")
    contributor = models.ForeignKey(
        Contributor, on_delete=models.SET_NULL, null=True, blank=True, related_name="assets"
    )
    # 64-bit pHash stored as a signed bigint (PostgreSQL has no unsigned 64-bit type); 256-bit PDQ as hex
    phash = models.BigIntegerField(null=True, blank=True, db_index=True)
    pdq = models.CharField(max_length=64, blank=True)
    pdq_quality = models.PositiveSmallIntegerField(null=True, blank=True)
    # what a dataset row says about the work as first published (img2dataset resizes what it stores)
    original_width = models.PositiveIntegerField(null=True, blank=True)
    original_height = models.PositiveIntegerField(null=True, blank=True)
    exif = models.JSONField(default=dict, blank=True, help_text="EXIF tags a dataset row carries")
    extra = models.JSONField(default=dict, blank=True, help_text="a dataset row's other columns, as read")
    url_only = models.BooleanField(
        default=False, help_text="a manifest row with no pixels: found by URL, domain and text only"
    )

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["collection", "source"], name="asset_unique_source")]

    def __str__(self) -> str:
        return self.title or self.source

    @property
    def caption_text(self) -> str:
        """Title plus keywords: the text the default model learns from and text search matches."""
        parts = [self.caption or self.title, ", ".join(self.keywords[:8])]
        return ". ".join(p for p in parts if p)


class Signal(TimeStampedModel):
    """A machine-readable training opt-out signal of an asset or of a whole domain."""

    class Kind(models.TextChoices):
        IPTC_DATA_MINING = "iptc_data_mining", "IPTC plus:DataMining"
        C2PA_TRAINING_MINING = "c2pa_training_mining", "C2PA / CAWG training-mining"
        TDMREP = "tdmrep", "TDMRep"
        X_ROBOTS_TAG = "x_robots_tag", "X-Robots-Tag"
        AI_TXT = "ai_txt", "ai.txt"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, null=True, blank=True, related_name="signals")
    domain = models.CharField(max_length=255, blank=True, db_index=True)
    # a URL that refused a downloader (img2dataset's X-Robots-Tag refusals): a signal with no work behind it
    url = models.URLField(max_length=2000, blank=True, db_index=True)
    value = models.TextField(help_text="raw value as found")
    location = models.CharField(max_length=500, help_text="where it was found, e.g. 'XMP plus:DataMining'")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "kind", "value", "location"], name="signal_unique_per_asset"
            ),
            models.UniqueConstraint(
                fields=["url", "kind", "value"], condition=~models.Q(url=""), name="signal_unique_per_url"
            ),
            models.CheckConstraint(
                condition=models.Q(asset__isnull=False) | ~models.Q(domain="") | ~models.Q(url=""),
                name="signal_has_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


class IngestRun(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="ingest_runs")
    path = models.CharField(max_length=2000)
    layout = models.CharField(max_length=40, blank=True, help_text="what the path was recognised as")
    options = models.JSONField(
        default=dict, blank=True, help_text="raster_root for pre-rendered SVGs, allow_roots, shard paths"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    new = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # rows a downloader did not fetch are not works: counted here by its status ({"failed_to_download": 8})
    not_downloaded = models.JSONField(default=dict, blank=True)
    sha256_mismatches = models.PositiveIntegerField(default=0)
    # [{"item": path-or-row, "reason": "..."}], capped so one bad folder cannot bloat the row
    errors = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    images_per_second = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ingest {self.path} -> {self.collection} ({self.status})"


class IngestShard(TimeStampedModel):
    """One shard of a run (a tar, a Parquet file, a folder): claimed by one worker, resumed at `rows_done`."""

    Status = IngestRun.Status

    run = models.ForeignKey(IngestRun, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    path = models.CharField(max_length=2000)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # rows read and stored: a resumed shard skips this many rows, so no row is counted (or decoded) twice
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="ingest_shard_unique_index")]

    def __str__(self) -> str:
        return f"shard {self.index} of ingest {self.run_id} ({self.status})"
