import numpy as np
import pytest

from core.models import Lease
from embeddings.models import IndexRun
from embeddings.search import index
from embeddings.services import index_collection
from tests.embeddings.factories import IndexRunFactory


def test_index_run_embeds_every_work_and_publishes_an_exact_index(indexed_works, fake_encoder):
    run = IndexRun.objects.get()
    assert run.status == "done" and run.embedded == len(indexed_works) and run.failed == 0
    meta = index.read_meta(fake_encoder.space)
    assert meta["kind"] == "flat" and meta["ntotal"] == len(indexed_works)
    directory = index.space_dir(fake_encoder.space)
    assert not list(directory.glob("*.part"))
    ids, vectors = index.load_vectors(fake_encoder.space)
    assert sorted(ids.tolist()) == sorted(a.id for a in indexed_works)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-2)
    assert np.load(index.shard_paths(fake_encoder.space)[0]).dtype == np.float16


def test_thumbnails_are_indexed_in_their_own_space_beside_the_embeddings(indexed_works):
    from embeddings.search import thumbnails

    assert index.read_meta(thumbnails.SPACE)["ntotal"] == len(indexed_works)
    ids, vectors = index.load_vectors(thumbnails.SPACE)
    by_id = dict(zip(ids.tolist(), vectors, strict=True))
    target = indexed_works[4]
    expected = thumbnails.thumbnail_vector(_rendered(target))
    assert np.allclose(by_id[target.id], expected, atol=2e-3)  # float16 on disk
    run = index_collection(collection_name="fixtures")  # a second run recomputes no thumbnail either
    assert run.embedded == 0 and len(index.shard_paths(thumbnails.SPACE)) == 1


def _rendered(asset):
    from provenance.imaging import load_rgb_path

    return load_rgb_path(asset.local_path).image


def test_a_second_index_run_adds_nothing_and_keeps_the_published_file(indexed_works, fake_encoder):
    published = index.space_dir(fake_encoder.space) / index.INDEX_FILE
    before = published.stat().st_mtime_ns
    run = index_collection(collection_name="fixtures")
    assert run.embedded == 0 and run.skipped == len(indexed_works)
    assert published.stat().st_mtime_ns == before
    assert len(index.shard_paths(fake_encoder.space)) == 1


def test_a_new_work_is_added_incrementally(indexed_works, fake_encoder):
    from provenance.models import Asset

    first = indexed_works[0]
    Asset.objects.create(collection=first.collection, source="copy.svg", local_path=first.local_path)
    run = index_collection(collection_name="fixtures")
    assert run.embedded == 1 and run.hashed == 1  # its missing hashes were computed too
    assert index.read_meta(fake_encoder.space)["ntotal"] == len(indexed_works) + 1
    assert Asset.objects.get(source="copy.svg").phash == first.phash


def test_a_failed_publish_leaves_the_previous_index_in_place(indexed_works, fake_encoder, monkeypatch):
    import faiss

    from provenance.models import Asset

    published = index.space_dir(fake_encoder.space) / index.INDEX_FILE
    before = published.read_bytes()
    Asset.objects.create(
        collection=indexed_works[0].collection, source="new.svg", local_path=indexed_works[1].local_path
    )

    def crash(idx, path):
        open(path, "wb").write(b"half an index")
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError):
        index_collection(collection_name="fixtures")
    assert published.read_bytes() == before
    assert IndexRun.objects.latest("id").status == "failed"
    monkeypatch.undo()
    run = index_collection(collection_name="fixtures")  # resumes: the new shard is on disk already
    assert run.embedded == 0 and index.read_meta(fake_encoder.space)["ntotal"] == len(indexed_works) + 1


def test_unreadable_work_is_recorded_not_fatal(works, tmp_path):
    from provenance.models import Asset

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    asset = Asset.objects.create(collection=works[0].collection, source="broken.png", local_path=str(broken))
    run = index_collection(collection_name="fixtures")
    assert run.status == "done" and run.failed == 1 and run.embedded == len(works)
    assert run.errors[0]["asset_id"] == asset.id and "not an image" in run.errors[0]["reason"]


def test_indexing_task_is_safe_to_run_twice(works, fake_encoder):
    from embeddings.tasks import index_collection_task

    index_collection_task.delay("fixtures")
    index_collection_task.delay("fixtures")
    assert index.read_meta(fake_encoder.space)["ntotal"] == len(works)
    assert list(IndexRun.objects.values_list("embedded", flat=True).order_by("id")) == [len(works), 0]


def test_ivf_index_beyond_the_exact_limit_finds_the_same_neighbours(settings, fake_encoder):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, fake_encoder.space.dim)).astype(np.float32)
    ids = np.arange(10, 3010, dtype=np.int64)
    index.write_shard(fake_encoder.space, ids, vectors)
    meta = index.publish_index(fake_encoder.space, exact_max=1000)
    assert meta["kind"] == "ivf"
    queries = vectors[:20] / np.linalg.norm(vectors[:20], axis=1, keepdims=True)
    _, found = index.search_vectors(fake_encoder.space, queries, 1, nprobe=64)
    assert (found[:, 0] == ids[:20]).mean() >= 0.95
    _, found = index.search_vectors(fake_encoder.space, queries, 1, exclude_ids={10, 11}, nprobe=64)
    assert 10 not in found and 11 not in found


def test_a_work_owning_several_vectors_keeps_them_all_from_its_latest_shard(fake_encoder):
    from embeddings.search import parts

    space = parts.parts_space(fake_encoder.space)
    rng = np.random.default_rng(0)
    index.write_shard(space, np.array([7, 7, 7, 8, 8, 8]), rng.standard_normal((6, space.dim)))
    index.write_shard(space, np.array([7, 7, 7]), rng.standard_normal((3, space.dim)) + 5)  # 7 re-embedded
    ids, vectors = index.load_vectors(space)
    assert sorted(ids.tolist()) == [7, 7, 7, 8, 8, 8]
    assert np.all(vectors[ids == 7].mean(axis=1) > 0.05)  # the second shard's vectors, not the first's
    assert index.publish_index(space, exact_max=100)["ntotal"] == 6


def test_indexing_embeds_each_works_parts_in_the_parts_space(indexed_works, fake_encoder):
    from embeddings.search import parts

    assert IndexRun.objects.get().parts_embedded == len(indexed_works)
    ids, _ = index.load_vectors(parts.parts_space(fake_encoder.space))
    assert sorted(ids.tolist()) == sorted(a.id for a in indexed_works for _ in range(parts.PER_WORK))
    assert index.read_meta(parts.parts_space(fake_encoder.space))["ntotal"] == parts.PER_WORK * len(
        indexed_works
    )
    assert parts.parts_space(fake_encoder.space).id != fake_encoder.space.id


def test_parts_follow_in_the_background_after_the_whole_work_index_is_published(
    works, fake_encoder, django_capture_on_commit_callbacks
):
    from embeddings.search import parts

    with django_capture_on_commit_callbacks() as queued:
        run = index_collection(collection_name="fixtures", parts="background")
    # the site can serve now: the whole-work index is published, no part yet
    assert run.kind == "works" and run.status == "done" and run.parts_embedded == 0
    assert index.read_meta(fake_encoder.space)["ntotal"] == len(works)
    assert index.read_meta(parts.parts_space(fake_encoder.space)) is None
    background = IndexRun.objects.get(kind="parts")
    assert background.status == "running" and background.total == len(works)
    for callback in queued:  # what the Celery worker then does
        callback()
    background.refresh_from_db()
    assert background.status == "done" and background.parts_embedded == len(works)
    assert index.read_meta(parts.parts_space(fake_encoder.space))["ntotal"] == len(works) * parts.PER_WORK


def test_index_batches_run_as_celery_tasks_and_a_redelivered_batch_embeds_nothing(
    works, fake_encoder, settings, django_capture_on_commit_callbacks
):
    from embeddings.search import geometry, keypoints, parts
    from embeddings.services import index_batch_leased, index_start

    settings.PROVENANT_INDEX_TASK_BATCH = 5
    with django_capture_on_commit_callbacks(execute=True):
        run = index_start(collection_name="fixtures")
    run.refresh_from_db()
    assert (run.status, run.batches_total, run.batches_done) == ("done", 4, 4)
    assert run.embedded == len(works) and run.parts_embedded == len(works) and keypoints.is_built()
    assert index.read_meta(fake_encoder.space)["ntotal"] == len(works)
    shards = index.shard_paths(fake_encoder.space) + index.shard_paths(parts.parts_space(fake_encoder.space))
    redelivered = index_batch_leased(
        run_id=run.pk, number=0, asset_ids=[w.id for w in works[:5]], holder="late"
    )
    run.refresh_from_db()
    assert redelivered == 0 and run.batches_done == 4 and run.embedded == len(works)
    (geometry.features_dir() / "pack" / "current.json").unlink()  # as indexed before the pack existed
    assert not keypoints.is_built()
    with django_capture_on_commit_callbacks(execute=True):
        again = index_start(collection_name="fixtures")
    assert again.total == 0 and again.batches_total == 0
    assert keypoints.is_built()  # nothing new to embed, but the pack is written
    assert shards == index.shard_paths(fake_encoder.space) + index.shard_paths(
        parts.parts_space(fake_encoder.space)
    )


def test_a_failing_batch_marks_the_run_failed_with_its_reason(works, fake_encoder, monkeypatch):
    from core import leases
    from embeddings import services
    from embeddings.tasks import index_batch_task

    run = IndexRunFactory(collection=works[0].collection, status="running", total=3)
    ids = [w.id for w in works[:3]]
    leases.leases_plan(job=services.job_key(run.pk), units=services._units(run.pk, [ids]), run_here=True)
    monkeypatch.setattr(services, "_decode", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        index_batch_task.delay(run.pk, 0, ids)
    run.refresh_from_db()
    assert run.status == "failed" and "disk full" in run.errors[-1]["reason"]
    assert set(Lease.objects.filter(job=services.job_key(run.pk)).values_list("state", flat=True)) == {
        "failed"
    }


def test_a_batch_of_views_finds_what_each_view_finds_alone(fake_encoder):
    """A batch of views goes through one BLAS product, a single view through FAISS's own loop: same neighbours."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((2000, fake_encoder.space.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.write_shard(fake_encoder.space, np.arange(1, 2001, dtype=np.int64), vectors)
    index.publish_index(fake_encoder.space, exact_max=10_000)
    queries = vectors[:16] + 0.01 * rng.standard_normal((16, fake_encoder.space.dim)).astype(np.float32)
    batch_scores, batch_ids = index.search_vectors(fake_encoder.space, queries, 5)
    for row, query in enumerate(queries):
        scores, ids = index.search_vectors(fake_encoder.space, query[None, :], 5)
        assert ids[0].tolist() == batch_ids[row].tolist()
        assert np.allclose(scores[0], batch_scores[row], atol=1e-5)
    assert batch_ids[:, 0].tolist() == list(range(1, 17))


def test_one_search_checks_the_hash_table_once(db, django_assert_max_num_queries):
    from embeddings.search.stores import hash_table, one_hash_table
    from provenance.models import Asset
    from tests.provenance.factories import AssetFactory

    AssetFactory(phash=5)
    with one_hash_table() as table:
        AssetFactory(phash=6)  # added while a search runs: that search keeps the table it started with
        with django_assert_max_num_queries(0):
            assert hash_table() is table and hash_table() is table
    assert len(table.ids) == 1
    assert (
        sorted(hash_table().phash.tolist()) == [5, 6] == sorted(Asset.objects.values_list("phash", flat=True))
    )
