"""The page a site operator is pointed to by our User-Agent: who fetches, what, why, and what we read about
their site."""

from django.conf import settings
from django.shortcuts import render

from websignals import selectors


def host_signals_page(request):
    host = request.GET.get("host", "").strip().lower()
    context = {
        "host": host,
        "user_agent": settings.FETCH_USER_AGENT,
        "ai_agents": settings.WEBSIGNALS_AI_AGENTS,
    }
    if host and "/" not in host and " " not in host:
        summary = selectors.host_summary(host)
        context.update(
            in_force=list(summary["in_force"].values()),
            latest=list(summary["latest"].values()),
            headers=list(selectors.host_evidence(host).filter(document="headers")[:20]),
        )
    return render(request, "websignals/host.html", context)
