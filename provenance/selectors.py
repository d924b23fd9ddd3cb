from django.db.models import Count, Q, QuerySet

from provenance.models import Asset, Contributor


def asset_list(*, collection: str | None = None, contributor_id: int | None = None) -> QuerySet[Asset]:
    assets = Asset.objects.select_related("collection", "contributor").prefetch_related("signals")
    if collection:
        assets = assets.filter(collection__name=collection)
    if contributor_id:
        assets = assets.filter(contributor_id=contributor_id)
    return assets.order_by("id")


def contributor_list(*, collection: str | None = None, name: str | None = None) -> QuerySet[Contributor]:
    contributors = Contributor.objects.prefetch_related("aliases")
    if collection:
        contributors = contributors.filter(assets__collection__name=collection).distinct()
    if name:
        matches = Q(display_name__icontains=name) | Q(aliases__raw_name__icontains=name)
        contributors = contributors.filter(matches).distinct()
    return contributors.annotate(asset_count=Count("assets", distinct=True)).order_by("display_name", "id")
