"""Searches that need no picture: by text, by contributor name or alias, by domain or URL; and hit enrichment."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Q

from core.exclusions import collect_exclusions
from core.urlnorm import host_of, normalize_url
from embeddings.encoders.factory import get_encoder
from embeddings.search import index
from embeddings.search.clusters import assign_clusters
from embeddings.search.hits import Hit
from provenance.models import Asset, Contributor


def _finish(hits: list[Hit], flagged: frozenset[int], top_k: int, *, cluster: bool = True) -> list[Hit]:
    hits = sorted(hits, key=lambda h: h.rank_key, reverse=True)[:top_k]
    for hit in hits:
        hit.opted_out = hit.asset_id in flagged
    if cluster:
        assign_clusters(hits)
    return hits


def search_text(query: str, *, top_k: int = 10, user: Any = None) -> list[Hit]:
    """Works whose picture is close to the text in the embedding space, after works whose caption contains it."""
    hidden, flagged = collect_exclusions(user)
    hits: dict[int, Hit] = {}
    words = query.strip()
    lexical = Asset.objects.filter(Q(title__icontains=words) | Q(caption__icontains=words)).exclude(
        id__in=hidden
    )
    for asset_id in lexical.order_by("id").values_list("id", flat=True)[:top_k]:
        hits[asset_id] = Hit(asset_id, 1.0, "caption", f"title or caption contains {words!r}")
    encoder = get_encoder()
    scores, ids = index.search_vectors(
        encoder.space,
        encoder.encode_texts([words]),
        top_k,
        exclude_ids=hidden,
        nprobe=settings.PROVENANT_IVF_NPROBE,
    )
    for score, asset_id in zip(scores[0], ids[0], strict=True):
        if asset_id >= 0 and int(asset_id) not in hits:
            hits[int(asset_id)] = Hit(
                int(asset_id), float(score), "embedding", f"text-image cosine {score:.3f}"
            )
    return _finish(list(hits.values()), flagged, top_k, cluster=False)


def search_contributor(name: str, *, top_k: int = 50, user: Any = None) -> list[Hit]:
    """Works credited to a contributor whose display name or any raw credit string contains `name`."""
    hidden, flagged = collect_exclusions(user)
    name = name.strip()
    if not name:
        return []
    contributors = Contributor.objects.filter(
        Q(display_name__icontains=name) | Q(aliases__raw_name__icontains=name)
    ).distinct()
    by_id = {c.id: c for c in contributors[:200]}
    assets = (
        Asset.objects.filter(Q(contributor_id__in=by_id) | Q(creator_raw__icontains=name))
        .exclude(id__in=hidden)
        .order_by("id")
        .values_list("id", "contributor_id", "creator_raw")[:top_k]
    )
    hits = []
    for asset_id, contributor_id, creator_raw in assets:
        credited = by_id[contributor_id].display_name if contributor_id in by_id else creator_raw
        hits.append(Hit(asset_id, 1.0, "contributor", f"credited to {credited!r}"))
    return _finish(hits, flagged, top_k, cluster=False)


def search_domain(value: str, *, top_k: int = 50, user: Any = None) -> list[Hit]:
    """Works hosted on a domain (subdomains included); given a full URL, the work at that URL ranks first."""
    hidden, flagged = collect_exclusions(user)
    host = host_of(value)
    if not host:
        return []
    wanted_url = normalize_url(value) if "/" in value.strip().split("://")[-1] else ""
    rows = (
        Asset.objects.filter(Q(domain=host) | Q(domain__endswith="." + host))
        .exclude(id__in=hidden)
        .order_by("id")
        .values_list("id", "domain", "url")
    )
    hits = []
    for asset_id, domain, url in rows.iterator():
        if wanted_url and url and normalize_url(url) == wanted_url:
            hits.append(Hit(asset_id, 1.0, "url", f"found at {url}"))
        elif len(hits) < top_k * 2:
            hits.append(Hit(asset_id, 1.0, "domain", f"hosted on {domain}"))
    return _finish(hits, flagged, top_k, cluster=False)


def hit_rows(hits: list[Hit]) -> list[dict[str, Any]]:
    """Hits with the asset fields a person needs to recognise the work (one query)."""
    assets = Asset.objects.select_related("contributor", "collection").in_bulk([h.asset_id for h in hits])
    rows = []
    for hit in hits:
        asset = assets.get(hit.asset_id)
        if asset is None:
            continue
        rows.append(
            {
                **hit.as_dict(),
                "source": asset.source,
                "url": asset.url,
                "domain": asset.domain,
                "collection": asset.collection.name,
                "key": asset.key,
                "title": asset.title,
                "display_title": display_title(asset.title, asset.key, asset.source),
                "contributor": asset.contributor.display_name if asset.contributor else asset.creator_raw,
                "licence": asset.licence,
            }
        )
    _flag_site_signals(rows)
    return rows


def display_title(title: str, key: str, source: str) -> str:
    """The work's title, else a readable one from its dataset key or file name ("bb_mail_new.svg" -> "Bb mail
    new"): "Untitled work" on every card tells an artist nothing."""
    import re
    from pathlib import PurePosixPath
    from urllib.parse import unquote, urlsplit

    if title.strip():
        return title.strip()
    name = PurePosixPath(unquote(urlsplit(source).path)).stem if source else ""
    words = re.sub(r"[_\-.+]+", " ", name).strip()
    if words and not words.isdigit():
        return words[:1].upper() + words[1:]
    return f"Item {key}" if key else "Untitled work"


def _flag_site_signals(rows: list[dict[str, Any]]) -> None:
    """A work whose own site refuses AI training (robots.txt, ai.txt, TDMRep, X-Robots-Tag, as fetched) is
    flagged with the line that decided: it leaves manifest builds even though nobody opted it out here."""
    from websignals.selectors import url_decisions

    for row, decision in zip(rows, url_decisions([row["url"] for row in rows]), strict=True):
        row["site_opt_out"] = decision.reason if decision is not None else ""
