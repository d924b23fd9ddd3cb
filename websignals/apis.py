"""What we read about a site, for anyone (a site operator first of all): `GET /api/signals/?host=`; and the state
of a signal crawl."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError
from core.serializers import ErrorSerializer
from websignals import selectors
from websignals.models import SignalCrawl, SiteEvidence


class EvidenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = SiteEvidence
        fields = [
            "document", "url", "outcome", "http_status", "fetched_at", "body_sha256", "truncated", "etag",
            "last_modified", "allowed", "rule", "reason",
        ]  # fmt: skip


class HostSignalsSerializer(serializers.Serializer):
    host = serializers.CharField()
    as_of = serializers.DateTimeField()
    in_force = EvidenceSerializer(many=True, help_text="the evidence decisions are made from, per document")
    latest = EvidenceSerializer(many=True, help_text="the latest fetch of each document, whatever came of it")
    history = EvidenceSerializer(many=True, help_text="the latest 50 fetches, work headers included")


class SignalCrawlSerializer(serializers.ModelSerializer):
    class Meta:
        model = SignalCrawl
        fields = [
            "id", "source", "status", "max_age_s", "headers", "hosts_total", "hosts_done", "hosts_fresh",
            "hosts_unreachable", "fetches", "batches_total", "batches_done", "created_at", "started_at",
            "finished_at", "error",
        ]  # fmt: skip


class HostSignalsApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("host", str, required=True, description="e.g. art.example.org")],
        responses={200: HostSignalsSerializer, 400: ErrorSerializer},
        summary="What Provenant read about a site: robots.txt, ai.txt, tdmrep.json and work headers",
    )
    def get(self, request):
        host = request.query_params.get("host", "").strip()
        if not host or "/" in host or " " in host:
            raise ApplicationError("Give a host name, e.g. ?host=art.example.org.")
        summary = selectors.host_summary(host)
        return Response(
            HostSignalsSerializer(
                {
                    "host": summary["host"],
                    "as_of": summary["as_of"],
                    "in_force": list(summary["in_force"].values()),
                    "latest": list(summary["latest"].values()),
                    "history": list(selectors.host_evidence(summary["host"])[:50]),
                }
            ).data
        )


class SignalCrawlDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: SignalCrawlSerializer, 404: ErrorSerializer}, summary="A signal crawl's progress"
    )
    def get(self, request, crawl_id: int):
        return Response(SignalCrawlSerializer(get_object_or_404(SignalCrawl, pk=crawl_id)).data)
