from django.conf import settings
from django.db import migrations


def shards_to_leases(apps, schema_editor):
    """A running ingest's shards and finish become leases (unsent, so the reaper sends what is left)."""
    Lease = apps.get_model("core", "Lease")
    IngestShard = apps.get_model("provenance", "IngestShard")
    queue = settings.PROVENANT_INGEST_QUEUE
    rows, runs = [], set()
    for shard in IngestShard.objects.filter(run__status="running"):
        runs.add(shard.run_id)
        rows.append(
            Lease(
                job=f"ingest_run:{shard.run_id}",
                kind="ingest_shard",
                unit=str(shard.pk),
                state="done" if shard.status == "done" else "pending",
                holder=shard.claimed_by,
                task="provenance.tasks.ingest_shard_task",
                args=[shard.run_id, shard.pk],
                queue=queue,
            )
        )
    for run_id in runs:
        rows.append(
            Lease(
                job=f"ingest_run:{run_id}",
                kind="ingest_finish",
                unit=str(run_id),
                task="provenance.tasks.ingest_run_finish_task",
                args=[run_id],
                queue=queue,
                after_all=True,
            )
        )
    Lease.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_leases"),
        ("provenance", "0002_dataset_layouts_and_shards"),
    ]

    operations = [
        migrations.RunPython(shards_to_leases, migrations.RunPython.noop),
        migrations.RemoveField(model_name="ingestshard", name="claimed_by"),
    ]
