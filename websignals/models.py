"""What the web says about training on its works, as fetched: one evidence row per fetch of a site's robots.txt,
ai.txt or tdmrep.json, or of a work's response headers; and the crawls that fetch them.

Evidence rows are never updated: a later fetch adds a row, so a decision can be reproduced as of any instant (a
manifest build's cut-off) from the rows fetched before it.
"""

from django.db import models

from core.models import TimeStampedModel


class SignalCrawl(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    source = models.CharField(max_length=2000, help_text="collection:NAME or input:PATH")
    max_age_s = models.PositiveIntegerField()
    headers = models.BooleanField(default=False, help_text="also fetch each work's response headers")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    hosts_total = models.PositiveIntegerField(default=0)
    hosts_done = models.PositiveIntegerField(default=0)
    hosts_fresh = models.PositiveIntegerField(
        default=0, help_text="fetched within max-age: not fetched again"
    )
    hosts_unreachable = models.PositiveIntegerField(default=0)
    fetches = models.PositiveIntegerField(default=0)
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"signal crawl {self.pk} of {self.source} ({self.status})"


class SignalCrawlBatch(models.Model):
    """A slice of a crawl's hosts: one Celery task, done at most once; who holds it is its lease's (core.Lease)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"

    crawl = models.ForeignKey(SignalCrawl, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    hosts = models.JSONField(help_text='{"host": ["work URL", ...]}; URLs only when headers are fetched')
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)

    class Meta:
        ordering = ["crawl", "index"]
        constraints = [models.UniqueConstraint(fields=["crawl", "index"], name="crawl_batch_unique_index")]

    def __str__(self) -> str:
        return f"batch {self.index} of crawl {self.crawl_id} ({self.status})"


class SiteEvidence(models.Model):
    class Document(models.TextChoices):
        ROBOTS_TXT = "robots_txt", "robots.txt"
        AI_TXT = "ai_txt", "ai.txt"
        TDMREP = "tdmrep", "/.well-known/tdmrep.json"
        HEADERS = "headers", "a work's response headers"

    class Outcome(models.TextChoices):
        DOCUMENT = "document", "found (2xx, or 304 for the body fetched before)"
        ABSENT = "absent", "no such file (4xx)"
        ERROR = "error", "server error (5xx): the earlier evidence stays in force"
        UNREACHABLE = "unreachable", "no answer: retried next time, the earlier evidence stays in force"
        REFUSED = "refused", "not fetched (not a public address, or a redirect to another host)"

    host = models.CharField(max_length=255, db_index=True, help_text="the host as fetched (lower case, IDNA)")
    document = models.CharField(max_length=20, choices=Document.choices)
    url = models.CharField(max_length=2000, help_text="where it was fetched")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    fetched_at = models.DateTimeField(db_index=True)
    body = models.TextField(
        blank=True, help_text="the document (decoded, capped), or the relevant header lines"
    )
    body_sha256 = models.CharField(max_length=64, blank=True)
    truncated = models.BooleanField(default=False)
    etag = models.CharField(max_length=500, blank=True)
    last_modified = models.CharField(max_length=100, blank=True)
    allowed = models.BooleanField(null=True, help_text="decision for the site's root (or the work's URL)")
    rule = models.CharField(max_length=500, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    crawl = models.ForeignKey(SignalCrawl, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        ordering = ["host", "document", "-fetched_at", "-id"]
        indexes = [models.Index(fields=["host", "document", "fetched_at"], name="evidence_host_doc_time")]
        verbose_name_plural = "site evidence"

    def __str__(self) -> str:
        return f"{self.url} {self.outcome} {self.http_status or ''} at {self.fetched_at:%Y-%m-%d %H:%M}"
