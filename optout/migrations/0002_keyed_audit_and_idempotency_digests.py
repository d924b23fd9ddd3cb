import hashlib

from django.db import migrations, models


def hash_idempotency_keys(apps, schema_editor):
    """Keys were stored as sent (cut to 200 characters); they are now stored as their SHA-256."""
    OptOut = apps.get_model("optout", "OptOut")
    for optout in OptOut.objects.exclude(idempotency_key=None).only("pk", "idempotency_key").iterator():
        digest = hashlib.sha256(optout.idempotency_key.encode("utf-8", "surrogatepass")).hexdigest()
        OptOut.objects.filter(pk=optout.pk).update(idempotency_key=digest)


class Migration(migrations.Migration):
    """Audit rows name the key that hashed them ('' for the unkeyed rows written before: `manage.py audit_rekey`
    re-hashes those); opt-outs keep the fingerprint of the request an Idempotency-Key came with."""

    dependencies = [
        ("optout", "0001_initial"),
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
    ]
