import hashlib

from django.db import migrations, models


def hash_idempotency_keys(apps, schema_editor):
    """Keys were stored as sent (cut to 200 characters); they are now stored as their SHA-256."""
    OptOut = apps.get_model("optout", "OptOut")
    for optout in OptOut.objects.exclude(idempotency_key=None).only("pk", "idempotency_key").iterator():
        digest = hashlib.sha256(optout.idempotency_key.encode("utf-8", "surrogatepass")).hexdigest()
        OptOut.objects.filter(pk=optout.pk).update(idempotency_key=digest)


def rekey_urls_as_a_browser_parses_them(apps, schema_editor):
    """URL keys are now computed with a WHATWG parser (core.urlnorm): recompute the stored ones from their work's
    URL, so a key written with the old parser (a path with a space, a non-ASCII host...) still matches."""
    from core.urlnorm import normalize_url

    OptOutKey = apps.get_model("optout", "OptOutKey")
    Asset = apps.get_model("provenance", "Asset")
    rows = OptOutKey.objects.filter(kind="url", asset_id__isnull=False).values_list("pk", "optout_id", "key", "asset_id")
    for pk, optout_id, key, asset_id in rows.iterator(chunk_size=2000):
        url = Asset.objects.filter(pk=asset_id).values_list("url", flat=True).first()
        new = normalize_url(url or "")
        if not new or new == key:
            continue
        if OptOutKey.objects.filter(optout_id=optout_id, kind="url", key=new).exists():
            OptOutKey.objects.filter(pk=pk).delete()  # two spellings of one URL now meet
        else:
            OptOutKey.objects.filter(pk=pk).update(key=new)


class Migration(migrations.Migration):
    """Audit rows name the key that hashed them ('' for the unkeyed rows written before: `manage.py audit_rekey`
    re-hashes those); opt-outs keep the fingerprint of the request an Idempotency-Key came with; URL keys are
    recomputed with the WHATWG parser."""

    dependencies = [
        ("optout", "0002_protect_rows_and_gate_withdrawals"),
        ("provenance", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditentry",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AddField(
            model_name="optout",
            name="idempotency_fingerprint",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(hash_idempotency_keys, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(rekey_urls_as_a_browser_parses_them, migrations.RunPython.noop, elidable=True),
    ]
