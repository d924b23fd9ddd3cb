"""What a build reads: collection assets (by id range) or an external Parquet manifest; and the registry rows
(opt-outs from optout.registry, denying signals from provenance.Signal) frozen at the cut-off."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from itertools import islice

import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.utils.module_loading import import_string

from core.arrowquery import query_batches
from core.exceptions import ApplicationError
from core.urlnorm import normalize_host, normalize_url
from optout.registry import Registry
from provenance.models import Asset, Collection, Signal
from training_filter.models import ManifestBuild
from training_filter.pipeline import parquet_input
from training_filter.pipeline.registry import snapshot_batch
from training_filter.pipeline.shard import OUTPUT_SCHEMA, ROW_SIGNAL_PREFIX

_ASSET_FIELDS: tuple[str, ...] = (
    "id",
    "key",
    "url",
    "caption",
    "title",
    "keywords",
    "width",
    "height",
    "sha256",
    "phash",
)
_ASSET_FIELDS += ("contributor__display_name", "creator_raw", "licence", "local_path")
SNAPSHOT_BATCH_ROWS = 100_000


def _collection(name: str) -> Collection:
    try:
        return Collection.objects.get(name=name)
    except Collection.DoesNotExist:
        raise ApplicationError(f"No collection named {name!r}.", status_code=404) from None


def input_hash(build: ManifestBuild) -> str:
    if build.input_kind == ManifestBuild.InputKind.PARQUET:
        return parquet_input.content_hash(build.input_ref)
    digest = hashlib.sha256()
    assets = Asset.objects.filter(collection=_collection(build.input_ref)).order_by("id")
    for row in assets.values_list(*_ASSET_FIELDS).iterator(chunk_size=5000):
        digest.update(json.dumps(row, default=str).encode() + b"\n")
    return digest.hexdigest()


def plan_shards(build: ManifestBuild) -> list[dict]:
    if build.input_kind == ManifestBuild.InputKind.PARQUET:
        return parquet_input.plan_shards(build.input_ref, target_rows=settings.MANIFEST_SHARD_ROWS)
    ids = (
        Asset.objects.filter(collection=_collection(build.input_ref))
        .order_by("id")
        .values_list("id", flat=True)
    )
    specs: list[dict] = []
    chunk: list[int] = []
    for asset_id in ids.iterator(chunk_size=10_000):
        chunk.append(asset_id)
        if len(chunk) == settings.MANIFEST_SHARD_ROWS:
            specs.append({"id_from": chunk[0], "id_to": chunk[-1]})
            chunk = []
    if chunk:
        specs.append({"id_from": chunk[0], "id_to": chunk[-1]})
    return specs


def read_shard(build: ManifestBuild, spec: dict) -> Iterator[pa.Table]:
    batch_rows = settings.MANIFEST_BATCH_ROWS
    if build.input_kind == ManifestBuild.InputKind.PARQUET:
        yield from parquet_input.read_shard(build.input_ref, spec, batch_rows=batch_rows)
        return
    assets = Asset.objects.filter(
        collection__name=build.input_ref, id__gte=spec["id_from"], id__lte=spec["id_to"]
    ).order_by("id")
    rows: list[tuple] = []
    for row in assets.values_list(*_ASSET_FIELDS).iterator(chunk_size=5000):
        rows.append(row)
        if len(rows) == batch_rows:
            yield _asset_table(rows)
            rows = []
    if rows:
        yield _asset_table(rows)


def _asset_table(rows: list[tuple]) -> pa.Table:
    data: dict[str, list] = {name: [] for name in OUTPUT_SCHEMA.names}
    for (
        aid,
        key,
        url,
        caption,
        title,
        keywords,
        w,
        h,
        sha,
        phash,
        contributor,
        creator,
        licence,
        path,
    ) in rows:
        text = ". ".join(p for p in (caption or title, ", ".join((keywords or [])[:8])) if p)
        values = (key or str(aid), url, text, w, h, sha, phash, contributor or creator, licence, path, aid)
        for name, value in zip(OUTPUT_SCHEMA.names, values, strict=True):
            data[name].append(value)
    return pa.table(data, schema=OUTPUT_SCHEMA)


def registry_snapshot_batches(build: ManifestBuild) -> Iterator[pa.RecordBatch]:
    """Everything in force at `build.as_of` as Arrow batches of (kind, key, reason, rule, optout_id). A source
    that returns a `Registry` (the opt-out registry does) is streamed from a database cursor, server-side on
    PostgreSQL, a batch at a time; any other iterable of rows is read in chunks."""
    try:
        registry_rows = import_string(settings.MANIFEST_REGISTRY_SOURCE)
    except ImportError as exc:
        # building without the registry would publish a manifest that silently ignores opt-outs
        raise ApplicationError(f"The opt-out registry is not available: {exc}") from exc
    rows = registry_rows(as_of=build.as_of)
    if isinstance(rows, Registry):
        yield from _stream_registry(rows)
    else:
        yield from _row_batches((r.kind, r.key, r.reason, r.rule, r.optout_id) for r in rows)
    yield from _row_batches(_signal_rows(build))
    yield from _row_batches(_site_signal_rows(build))


def _stream_registry(registry: Registry) -> Iterator[pa.RecordBatch]:
    """The keys from the database, each given its opt-out's reason and rule by one vectorised lookup."""
    # asked for first: a read that can start at once (SQLite's) runs beside the labels' (the snapshot sorts its
    # rows itself)
    key_batches = query_batches(
        registry.keys.order_by(), _row_schema(["kind", "key", "optout_id"]), SNAPSHOT_BATCH_ROWS
    )
    label_schema = _row_schema(["optout_id", "reason", "rule"])
    labels = pa.Table.from_batches(query_batches(registry.labels, label_schema), label_schema)
    ids, reasons, rules = (labels.column(name).combine_chunks() for name in label_schema.names)
    for keys in key_batches:
        at = pc.index_in(keys.column("optout_id"), value_set=ids)
        if at.null_count:  # an opt-out became active between the two reads
            raise ApplicationError("The opt-out registry changed while it was read: run the build again.")
        labelled = [reasons.take(at), rules.take(at)]
        yield snapshot_batch([keys.column("kind"), keys.column("key"), *labelled, keys.column("optout_id")])


def _row_schema(names: list[str]) -> pa.Schema:
    return pa.schema([(name, pa.int64() if name == "optout_id" else pa.string()) for name in names])


def _row_batches(rows: Iterator[tuple]) -> Iterator[pa.RecordBatch]:
    while chunk := list(islice(rows, SNAPSHOT_BATCH_ROWS)):
        yield snapshot_batch(list(zip(*chunk, strict=True)))


def _signal_rows(build: ManifestBuild) -> Iterator[tuple[str, str, str, str, str]]:
    """Denying signals: per asset (its own signals and its domain's, judged against its URL) for a collection,
    and every domain-level signal as `signal_domain` rows that shards judge against each row's URL."""
    signals = Signal.objects.filter(created_at__lte=build.as_of).order_by("id")
    domain_rules: dict[str, list[Signal]] = {}
    # a URL's own signal (url set) speaks for that URL only, never for its whole domain
    for signal in signals.filter(asset__isnull=True, url=""):
        domain = normalize_host(signal.domain)
        domain_rules.setdefault(domain, []).append(signal)
        payload = json.dumps({"kind": signal.kind, "value": signal.value, "location": signal.location})
        yield ("signal_domain", domain, payload, signal.kind, "")
    yield from _url_signal_rows(signals)
    if build.input_kind != ManifestBuild.InputKind.COLLECTION:
        yield from _input_row_signal_rows(build)
        return
    per_asset: dict[int, list[Signal]] = {}
    for signal in signals.filter(asset__collection__name=build.input_ref):
        if signal.asset_id is not None:  # the filter on the asset's collection leaves out domain signals
            per_asset.setdefault(signal.asset_id, []).append(signal)
    urls = dict(Asset.objects.filter(id__in=list(per_asset)).values_list("id", "url"))
    for asset_id, own in sorted(per_asset.items()):
        denial = signal_denial(own, url=urls.get(asset_id, ""), domain_rules=[])
        if denial is not None:
            yield ("signal", str(asset_id), denial[1], denial[0], "")


def _url_signal_rows(signals) -> Iterator[tuple[str, str, str, str, str]]:
    """URLs that refused a downloader (img2dataset's X-Robots-Tag refusals): no work of ours, but any row with
    that URL is out."""
    for signal in signals.filter(asset__isnull=True).exclude(url=""):
        key = normalize_url(signal.url)
        denial = signal_denial([signal], url=signal.url, domain_rules=[])
        if key and denial is not None:
            yield ("signal_url", key, denial[1], denial[0], "")


def _input_row_signal_rows(build: ManifestBuild) -> Iterator[tuple[str, str, str, str, str]]:
    """An external manifest's per-row signal columns, judged by the same rules as ingested works' signals."""
    from types import SimpleNamespace

    from provenance.datasets.columns import row_signals

    for key, url, columns in parquet_input.row_signals(build.input_ref):
        found = [SimpleNamespace(**signal) for signal in row_signals(columns)]
        denial = signal_denial(found, url=url, domain_rules=[])
        if denial is not None:
            yield ("signal", f"{ROW_SIGNAL_PREFIX}{key}", denial[1], denial[0], "")


def _site_signal_rows(build: ManifestBuild) -> Iterator[tuple[str, str, str, str, str]]:
    """Rows refused by their own site (websignals' evidence fetched at or before the cut-off), judged here once
    per URL by the same function as the check API, so that every shard applies the same decision by exact key
    and the removal list carries the line that decided (`robots.txt CCBot Disallow: /`)."""
    from core.urlkeys import url_keys
    from websignals.selectors import hosts_with_evidence, url_decisions
    from websignals.sources import site_of

    hosts = hosts_with_evidence(as_of=build.as_of)
    if not hosts:
        return
    for urls in _input_urls(build):
        candidates = [u for u in urls if u and (site := site_of(u)) is not None and site[1] in hosts]
        if not candidates:
            continue
        keys, _ = url_keys(pa.array(candidates, pa.string()))
        decisions = url_decisions(candidates, as_of=build.as_of)
        for key, decision in zip(keys.to_pylist(), decisions, strict=True):
            if decision is not None and key:
                yield ("signal_url", key, decision.reason, decision.rule, "")


def _input_urls(build: ManifestBuild) -> Iterator[list[str]]:
    batch_rows = settings.MANIFEST_BATCH_ROWS
    if build.input_kind == ManifestBuild.InputKind.PARQUET:
        for spec in parquet_input.plan_shards(build.input_ref, target_rows=settings.MANIFEST_SHARD_ROWS):
            for table in parquet_input.read_shard(build.input_ref, spec, batch_rows=batch_rows):
                yield table.column("url").to_pylist()
        return
    assets = Asset.objects.filter(collection__name=build.input_ref).exclude(url="").order_by("id")
    urls = assets.values_list("url", flat=True).iterator(chunk_size=batch_rows)
    while batch := list(islice(urls, batch_rows)):
        yield batch


def signal_denial(signals, *, url: str, domain_rules) -> tuple[str, str] | None:
    """(rule, reason) of the first signal that denies training for `url`, by optout.rules; None if allowed."""
    try:
        evaluate = import_string(settings.MANIFEST_SIGNAL_EVALUATOR)
    except ImportError as exc:
        raise ApplicationError(f"The signal rules are not available: {exc}") from exc
    for decision in evaluate(signals, url=url, domain_rules=domain_rules):
        if not decision.allowed:
            return (decision.rule, decision.reason or f"{decision.location}: {decision.signal}")
    return None


def domain_signal_evaluator(url: str, payloads: list[str]) -> tuple[str, str] | None:
    """For shards: judge a row's URL against the domain-level signals stored in the snapshot."""
    from types import SimpleNamespace

    rules = [SimpleNamespace(**json.loads(p)) for p in payloads]
    return signal_denial([], url=url, domain_rules=rules)


def latest_optout_change() -> datetime | None:
    """When the opt-out state (or a signal) last changed; None when nothing is known."""
    from django.apps import apps
    from django.db.models import Max

    times = [Signal.objects.aggregate(at=Max("created_at"))["at"]]
    try:
        change = apps.get_model("optout", "OptOutStateChange")
        times.append(change.objects.aggregate(at=Max("at"))["at"])
        # keys the ownership gate withdrew from an active opt-out release works without a state change
        key = apps.get_model("optout", "OptOutKey")
        times.append(key.objects.aggregate(at=Max("withdrawn_at"))["at"])
    except LookupError:
        pass
    times = [t for t in times if t is not None]
    return max(times) if times else None
