"""Job units (leases) for operators: GET /api/jobs/units/?job=manifest_build:12&state=held."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAdminUser

from core import selectors
from core.models import Lease
from core.pagination import DefaultPagination


class LeaseOutputSerializer(serializers.ModelSerializer):
    alive = serializers.SerializerMethodField(help_text="held, and renewed within the lease's time to live")

    class Meta:
        model = Lease
        fields = [
            "id", "job", "kind", "unit", "state", "alive", "holder", "heartbeat_at", "expires_at", "attempts",
            "error", "dispatched_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_alive(self, lease: Lease) -> bool:
        return selectors.lease_alive(lease)


class JobUnitListApi(ListAPIView):
    """Every unit of long work (manifest shards and finalisers, ingest shards, index batches, generator training
    and attribution, signal crawl batches) with its holder, last heartbeat and attempts. Staff only."""

    permission_classes = [IsAdminUser]
    serializer_class = LeaseOutputSerializer
    pagination_class = DefaultPagination

    @extend_schema(
        operation_id="job_units_list",
        parameters=[
            OpenApiParameter("job", str, description="a job, e.g. manifest_build:12, ingest_run:3"),
            OpenApiParameter(
                "state", str, enum=[s.value for s in Lease.State], description="only units in it"
            ),
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return selectors.lease_list(job=params.get("job", ""), state=params.get("state", ""))
