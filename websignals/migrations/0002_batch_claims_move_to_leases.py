from django.db import migrations


def batches_to_leases(apps, schema_editor):
    """An unfinished crawl's batches become leases (unsent, so the reaper sends what is left)."""
    Lease = apps.get_model("core", "Lease")
    SignalCrawlBatch = apps.get_model("websignals", "SignalCrawlBatch")
    rows = [
        Lease(
            job=f"signal_crawl:{batch.crawl_id}",
            kind="signal_crawl_batch",
            unit=f"{batch.crawl_id}:{batch.index}",
            state="done" if batch.status == "done" else "pending",
            holder=batch.claimed_by,
            task="websignals.tasks.signal_crawl_batch",
            args=[batch.crawl_id, batch.index],
        )
        for batch in SignalCrawlBatch.objects.filter(crawl__status__in=["pending", "running"])
    ]
    Lease.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_leases"),
        ("websignals", "0001_evidence_and_crawls"),
    ]

    operations = [
        migrations.RunPython(batches_to_leases, migrations.RunPython.noop),
        migrations.RemoveField(model_name="signalcrawlbatch", name="claimed_at"),
        migrations.RemoveField(model_name="signalcrawlbatch", name="claimed_by"),
    ]
