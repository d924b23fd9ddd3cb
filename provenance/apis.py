from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers

from core.exclusions import collect_exclusions
from core.permissions import IsOperator
from provenance import selectors
from provenance.models import Asset, Collection, Contributor, ContributorAlias, IngestRun, Signal


class SignalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Signal
        fields = ["kind", "value", "location", "domain", "url"]


class ContributorSerializer(serializers.ModelSerializer):
    aliases: serializers.SlugRelatedField[ContributorAlias] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="raw_name"
    )
    asset_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Contributor
        fields = ["id", "display_name", "aliases", "urls", "domains", "asset_count"]


class AssetSerializer(serializers.ModelSerializer):
    collection: serializers.SlugRelatedField[Collection] = serializers.SlugRelatedField(
        read_only=True, slug_field="name"
    )
    contributor = serializers.SerializerMethodField()
    signals = SignalSerializer(many=True, read_only=True)

    class Meta:
        model = Asset
        fields = [
            "id", "collection", "source", "key", "url", "domain", "sha256", "byte_size", "width", "height",
            "format", "title", "caption", "keywords", "licence", "rights", "creator_raw", "contributor",
            "phash", "pdq", "original_width", "original_height", "exif", "extra", "url_only", "signals",
            "created_at",
        ]  # fmt: skip

    def get_contributor(self, asset: Asset) -> dict | None:
        if not asset.contributor:
            return None
        return {"id": asset.contributor_id, "display_name": asset.contributor.display_name}


COLLECTION = OpenApiParameter("collection", str, description="collection name")


class ContributorListApi(generics.ListAPIView):
    serializer_class = ContributorSerializer

    @extend_schema(
        parameters=[COLLECTION, OpenApiParameter("name", str, description="name or alias contains")]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return selectors.contributor_list(collection=params.get("collection"), name=params.get("name"))


class ContributorDetailApi(generics.RetrieveAPIView):
    serializer_class = ContributorSerializer

    def get_queryset(self):
        return selectors.contributor_list()


def _visible(assets, request):
    """Opted-out works are listed to nobody but their owner (the same exclusion search and thumbnails use)."""
    hidden, _flagged = collect_exclusions(request.user)
    return assets.exclude(pk__in=hidden) if hidden else assets


class AssetListApi(generics.ListAPIView):
    serializer_class = AssetSerializer

    @extend_schema(
        parameters=[COLLECTION, OpenApiParameter("contributor", int, description="contributor id")]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    class AssetFilterSerializer(serializers.Serializer):
        collection = serializers.CharField(required=False)
        contributor = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def get_queryset(self):
        params = self.AssetFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        assets = selectors.asset_list(
            collection=params.validated_data.get("collection"),
            contributor_id=params.validated_data.get("contributor"),
        )
        return _visible(assets, self.request)


class AssetDetailApi(generics.RetrieveAPIView):
    serializer_class = AssetSerializer

    def get_queryset(self):
        return _visible(selectors.asset_list(), self.request)


class IngestRunSerializer(serializers.ModelSerializer):
    collection: serializers.SlugRelatedField[Collection] = serializers.SlugRelatedField(
        read_only=True, slug_field="name"
    )

    class Meta:
        model = IngestRun
        fields = [
            "id", "collection", "path", "layout", "status", "total", "processed", "new", "skipped", "failed",
            "not_downloaded", "sha256_mismatches", "images_per_second", "errors", "started_at", "finished_at",
            "created_at",
        ]  # fmt: skip


class IngestRunListApi(generics.ListAPIView):
    """Ingest runs with their progress and errors (operators only: paths and errors describe the server)."""

    serializer_class = IngestRunSerializer
    permission_classes = [IsOperator]
    queryset = IngestRun.objects.select_related("collection").order_by("-id")


class IngestRunDetailApi(generics.RetrieveAPIView):
    serializer_class = IngestRunSerializer
    permission_classes = [IsOperator]
    queryset = IngestRun.objects.select_related("collection")
