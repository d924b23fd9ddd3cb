from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Lease(TimeStampedModel):
    """One unit of long work (a manifest shard, an ingest shard, an index batch, a training run, ...) and who holds
    it. The holder renews `expires_at` while it works; a lease past it is dead, whatever the broker thinks, and
    the reaper sends its task again. `task`/`args`/`queue` say how to (re)start the unit. A lease whose
    `after_all` is set is a job's last step (a finalise): it starts once every other unit of its job is done."""

    class State(models.TextChoices):
        PENDING = "pending"
        HELD = "held"
        DONE = "done"
        FAILED = "failed"

    job = models.CharField(
        max_length=100, db_index=True, help_text="the job it belongs to, e.g. manifest_build:12"
    )
    kind = models.CharField(max_length=50)
    unit = models.CharField(max_length=200, help_text="the unit's key within its kind")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    holder = models.CharField(
        max_length=300, blank=True, help_text="worker host, process and task of the last claim"
    )
    token = models.CharField(
        max_length=32, blank=True, help_text="changes on every claim: renewals compare it"
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="claims so far (1 = never retried)")
    error = models.TextField(blank=True)
    task = models.CharField(max_length=200, help_text="the Celery task that runs the unit")
    args = models.JSONField(default=list, blank=True)
    queue = models.CharField(max_length=100, blank=True)
    after_all = models.BooleanField(default=False, help_text="runs once every other unit of the job is done")
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="when its task was last sent")

    class Meta:
        ordering = ["job", "id"]
        constraints = [models.UniqueConstraint(fields=["kind", "unit"], name="lease_unique_unit")]
        indexes = [models.Index(fields=["state", "expires_at"], name="lease_state_expiry")]

    def __str__(self) -> str:
        return f"{self.kind} {self.unit} ({self.state})"
