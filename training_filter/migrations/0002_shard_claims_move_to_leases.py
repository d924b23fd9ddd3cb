from django.conf import settings
from django.db import migrations


def shards_to_leases(apps, schema_editor):
    """An unfinished build's shards and finaliser become leases (pending ones unsent, so the reaper sends them)."""
    Lease = apps.get_model("core", "Lease")
    ManifestShard = apps.get_model("training_filter", "ManifestShard")
    queue = settings.MANIFEST_CELERY_QUEUE
    rows, builds = [], set()
    for shard in ManifestShard.objects.filter(build__status__in=["running", "finalising"]):
        builds.add(shard.build_id)
        rows.append(
            Lease(
                job=f"manifest_build:{shard.build_id}",
                kind="manifest_shard",
                unit=f"{shard.build_id}:{shard.index}",
                state="done" if shard.status == "done" else "pending",
                holder=shard.claimed_by,
                attempts=shard.attempts,
                task="training_filter.tasks.manifest_shard_filter",
                args=[shard.build_id, shard.index],
                queue=queue,
            )
        )
    for build_id in builds:
        rows.append(
            Lease(
                job=f"manifest_build:{build_id}",
                kind="manifest_finalise",
                unit=str(build_id),
                task="training_filter.tasks.manifest_build_finalise",
                args=[build_id],
                queue=queue,
                after_all=True,
            )
        )
    Lease.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_leases"),
        ("training_filter", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(shards_to_leases, migrations.RunPython.noop),
        migrations.RemoveField(model_name="manifestshard", name="attempts"),
        migrations.RemoveField(model_name="manifestshard", name="claimed_at"),
        migrations.RemoveField(model_name="manifestshard", name="claimed_by"),
    ]
