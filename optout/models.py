"""Artists' claims (domains, contributor identities), opt-out requests with their state history, the concrete
keys an active opt-out covers (what the check API and the manifest filter match), and the hash-chained audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from core.models import TimeStampedModel
from provenance.models import Asset, Contributor


class ClaimStatus(models.TextChoices):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


class DomainClaim(TimeStampedModel):
    """An artist's claim to a domain, verified by a token published over HTTP(S) or in a DNS TXT record."""

    class Method(models.TextChoices):
        HTTP = "http", "well-known file"
        DNS = "dns", "DNS TXT record"

    artist = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="domain_claims"
    )
    domain = models.CharField(max_length=255, db_index=True)
    token = models.CharField(max_length=100)
    status = models.CharField(max_length=20, choices=ClaimStatus.choices, default=ClaimStatus.PENDING)
    method = models.CharField(max_length=10, choices=Method.choices, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["artist", "domain"], name="domainclaim_unique_artist")]

    def __str__(self) -> str:
        return f"{self.domain} ({self.status})"


class ContributorClaim(TimeStampedModel):
    """An artist's claim to be a contributor identity: verified by an operator or by a C2PA signer bound to them."""

    class Method(models.TextChoices):
        OPERATOR = "operator", "operator review"
        C2PA = "c2pa", "C2PA signer"

    artist = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="contributor_claims"
    )
    contributor = models.ForeignKey(Contributor, on_delete=models.PROTECT, related_name="claims")
    evidence = models.TextField(blank=True, help_text="what the artist offers as proof, for the reviewer")
    status = models.CharField(max_length=20, choices=ClaimStatus.choices, default=ClaimStatus.PENDING)
    method = models.CharField(max_length=10, choices=Method.choices, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["artist", "contributor"], name="contributorclaim_unique_artist")
        ]

    def __str__(self) -> str:
        return f"{self.artist} as {self.contributor} ({self.status})"


class SignerBinding(TimeStampedModel):
    """A C2PA signing identity (certificate common name or issuer/subject string) an operator bound to an artist."""

    artist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signers")
    signer = models.CharField(max_length=500, unique=True)

    def __str__(self) -> str:
        return self.signer


class OptOut(TimeStampedModel):
    class Scope(models.TextChoices):
        WORKS = "works", "chosen works"
        NEAR_COPIES = "near_copies", "a work and its near-copies"
        CONTRIBUTOR = "contributor", "everything under a contributor identity"
        DOMAIN = "domain", "a whole domain"

    class Status(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        REJECTED = "rejected"
        REVOKED = "revoked"

    artist = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="optouts")
    scope = models.CharField(max_length=20, choices=Scope.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    reason = models.CharField(max_length=1000, blank=True)
    seed_asset = models.ForeignKey(Asset, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    contributor = models.ForeignKey(
        Contributor, on_delete=models.PROTECT, null=True, blank=True, related_name="optouts"
    )
    domain = models.CharField(max_length=255, blank=True)
    assets = models.ManyToManyField(Asset, through="OptOutItem", related_name="optouts")
    # SHA-256 of what the artist sent as Idempotency-Key (optout.idempotency), and of the request it came with
    # NULL, not '', when absent: the unique constraint must not treat all key-less requests as one
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    idempotency_fingerprint = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["artist", "idempotency_key"], name="optout_unique_idempotency")
        ]

    def __str__(self) -> str:
        return f"opt-out {self.pk} ({self.scope}, {self.status})"


class OptOutItem(models.Model):
    """A work an opt-out covers, fixed when the request is made (the near-copy cluster can change later).
    `excluded_at` marks a work the ownership gate took out because another verified artist owns it: the row
    stays, so the request is never rewritten unrecorded."""

    optout = models.ForeignKey(OptOut, on_delete=models.PROTECT, related_name="items")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="optout_items")
    excluded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["optout", "asset"], name="optoutitem_unique")]

    def __str__(self) -> str:
        return f"{self.optout_id}: asset {self.asset_id}"


class OptOutStateChange(models.Model):
    """Append-only history: the registry at any past instant is rebuilt from these rows."""

    optout = models.ForeignKey(OptOut, on_delete=models.PROTECT, related_name="history")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    note = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.optout_id}: {self.from_status or '-'} -> {self.to_status}"


class OptOutKey(models.Model):
    """A concrete key of a work an opt-out covers. `active` mirrors the opt-out's state (set in the same
    transaction) so the check API's lookups are one indexed query per key kind. `withdrawn_at` marks a key the
    ownership gate stopped publishing (it would cover a work or host another verified artist owns): it never
    becomes active again, and registry rebuilds as of an earlier instant still see it."""

    class Kind(models.TextChoices):
        URL = "url"
        DOMAIN = "domain"
        SHA256 = "sha256"
        PHASH = "phash"
        ASSET = "asset"

    optout = models.ForeignKey(OptOut, on_delete=models.PROTECT, related_name="keys")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(max_length=2000)
    phash = models.BigIntegerField(null=True, blank=True)
    asset_id = models.BigIntegerField(null=True, blank=True)
    active = models.BooleanField(default=False)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["kind", "key"], name="optoutkey_active_kind_key", condition=models.Q(active=True)
            ),
            models.Index(fields=["optout", "kind"], name="optoutkey_optout_kind"),
        ]
        constraints = [models.UniqueConstraint(fields=["optout", "kind", "key"], name="optoutkey_unique")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"


class RegistryClock(models.Model):
    """One row whose `version` changes (to a fresh random value) on every change to what the registry publishes
    (state changes, keys the gate withdraws, deletes): the check API's and search's in-process caches compare it
    on every call."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"registry v{self.version}"


class RegistryChange(models.Model):
    """The log behind the clock: one row per opt-out a registry change touched, so that a process holding the
    published keys reloads only those opt-outs' keys. Rows are written after the clock row is locked
    (optout.services.publishing.registry_touch), so their ids follow commit order. `optout_id` None: a change
    the log cannot pin on opt-outs (a deleted claim...), which makes every cache reload in full. A deleted key
    names itself (`kind`, `key`), since its row is gone."""

    id = models.BigAutoField(primary_key=True)
    version = models.BigIntegerField()
    optout_id = models.BigIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=10, blank=True, default="")
    key = models.CharField(max_length=2000, blank=True, default="")

    def __str__(self) -> str:
        return f"registry v{self.version}: opt-out {self.optout_id}"


class AuditEntry(models.Model):
    """One row of the hash-chained audit log: `hash` = HMAC-SHA256(audit key, prev_hash + canonical JSON of this
    row); `key_id` names the key (a legacy row, hashed with plain SHA-256 before the log was keyed, has '')."""

    seq = models.BigIntegerField(unique=True)
    event = models.CharField(max_length=100)
    payload = models.JSONField()
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.seq} {self.event}"


class AuditHead(models.Model):
    """The single chain head row: locked (SELECT ... FOR UPDATE) by every append so concurrent writers queue,
    and holding the last seq and hash so a deleted tail row is noticed too."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"head #{self.seq}"
