"""The web's own training opt-out signals as rules: pure functions, no Django, no I/O.

TDMRep (tdmrep.json, `tdm-reservation` headers and HTML meta), X-Robots-Tag `noai`/`noimageai`, Spawning's ai.txt
and robots.txt groups addressed to AI crawlers. robots.txt and ai.txt are parsed by protego (a maintained
robots.txt parser: groups, `*` and `$`, malformed lines); protego decides, and the rule that decided is read
back from its rule set so that every denial names it (`robots.txt CCBot Disallow: /`).

Each rule takes one signal (anything with `kind`, `value`, `location`) and the URL of the work it is judged for,
and answers a `Decision`. optout.rules adds the embedded-metadata rules and dispatches on the kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from core.urlnorm import parse_http_url

# Our crawler's user-agent tokens, matched case-insensitively against ai.txt groups and X-Robots-Tag prefixes.
DEFAULT_AGENTS: tuple[str, ...] = ("provenant",)


class SignalLike(Protocol):
    # read-only members: a frozen dataclass or a model row satisfies them
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def location(self) -> str: ...


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    reason: str
    signal: str = ""
    location: str = ""


def _allow(rule: str, reason: str, signal: SignalLike) -> Decision:
    return Decision(True, rule, reason, signal.value, signal.location)


def _deny(rule: str, reason: str, signal: SignalLike) -> Decision:
    return Decision(False, rule, reason, signal.value, signal.location)


# --- TDMRep ----------------------------------------------------------------------------------------------------


def _path_of(url: str) -> str:
    parts = parse_http_url(url) if url else None
    if parts is None:
        return "/"
    return (parts["pathname"] or "/") + parts["search"]


@lru_cache(maxsize=4096)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """robots.txt-style pattern: `*` any run of characters, a trailing `$` anchors the end; otherwise a prefix.
    A pattern that does not start with `/` or `*` (like `.png`) is matched anywhere in the path."""
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    if not body.startswith(("/", "*")):
        body = "*" + body
    regex = "".join(".*" if ch == "*" else re.escape(ch) for ch in body)
    return re.compile(regex + ("$" if anchored else ""))


def pattern_matches(pattern: str, path: str) -> bool:
    return bool(_pattern_regex(pattern).match(path))


def _tdm_reserved(value) -> bool:
    return str(value).strip() in ("1", "true", "True")


def tdmrep(signal: SignalLike, url: str = "") -> Decision:
    """A `tdm-reservation` header/meta value, or the body of /.well-known/tdmrep.json (a list of
    {"location": pattern, "tdm-reservation": 0|1}), where the longest matching location decides."""
    rule = "tdmrep"
    text = signal.value.strip()
    if text.startswith("[") or text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return _allow(rule, "tdmrep.json could not be parsed", signal)
        items = data if isinstance(data, list) else [data]
        path = _path_of(url)
        best = None
        for item in items:
            if not isinstance(item, dict) or "location" not in item:
                continue
            location = str(item["location"])
            if pattern_matches(location, path) and (best is None or len(location) > len(best[0])):
                best = (location, item.get("tdm-reservation", 0), str(item.get("tdm-policy") or ""))
        if best is None:
            return _allow(rule, f"no tdmrep.json location matches {path}", signal)
        if _tdm_reserved(best[1]):
            policy = f" (tdm-policy {best[2]})" if best[2] else ""
            return _deny(rule, f"tdmrep.json location {best[0]} tdm-reservation 1{policy}", signal)
        return _allow(rule, f"tdm-reservation 0 for location {best[0]!r}", signal)
    value = text.split(":", 1)[-1].strip() if text.lower().startswith("tdm-reservation") else text
    if _tdm_reserved(value):
        return _deny(rule, "tdm-reservation: 1 (text-and-data-mining rights reserved)", signal)
    return _allow(rule, f"tdm-reservation is {value!r}", signal)


# --- X-Robots-Tag ----------------------------------------------------------------------------------------------

AI_DIRECTIVES = {"noai", "noimageai"}
_KNOWN_DIRECTIVES = {
    "all", "noindex", "nofollow", "none", "noarchive", "nosnippet", "notranslate", "noimageindex",
    "unavailable_after", "indexifembedded", "max-snippet", "max-image-preview", "max-video-preview",
} | AI_DIRECTIVES  # fmt: skip


def parse_x_robots_tag(value: str) -> list[tuple[str, str]]:
    """[(user agent or '*', directive)] from one or more X-Robots-Tag header values (one per line).
    `googlebot: noai, noimageai` scopes every directive after the prefix to that agent."""
    pairs: list[tuple[str, str]] = []
    for line in value.splitlines():
        agent = "*"
        for raw in line.split(","):
            token = raw.strip()
            if not token:
                continue
            if ":" in token:
                head, rest = (t.strip() for t in token.split(":", 1))
                if head.lower() not in _KNOWN_DIRECTIVES:
                    agent, token = head.lower(), rest
                if not token:
                    continue
            pairs.append((agent, token.split(":", 1)[0].strip().lower()))
    return pairs


def x_robots_tag(signal: SignalLike, url: str = "", agents: Sequence[str] = DEFAULT_AGENTS) -> Decision:
    """noai / noimageai deny. A directive scoped to another crawler still denies: it states the author's
    refusal of AI use, and a training set built from copies crawled by that crawler would launder it."""
    rule = "x-robots-tag"
    for agent, directive in parse_x_robots_tag(signal.value):
        if directive in AI_DIRECTIVES:
            scope = "every crawler" if agent == "*" else f"user agent {agent!r}"
            return _deny(rule, f"X-Robots-Tag {directive} for {scope}", signal)
    return _allow(rule, "no noai / noimageai directive", signal)


# --- robots.txt and ai.txt (protego) --------------------------------------------------------------------------

# Crawlers whose robots.txt groups speak for AI training, when the deployment does not configure its own list
# (settings.WEBSIGNALS_AI_AGENTS). CCBot's crawl (Common Crawl) fed LAION.
DEFAULT_AI_AGENTS: tuple[str, ...] = (
    "CCBot", "GPTBot", "Google-Extended", "anthropic-ai", "ClaudeBot", "Bytespider", "Applebot-Extended",
    "meta-externalagent", "cohere-ai", "img2dataset",
)  # fmt: skip


@lru_cache(maxsize=256)
def _parsed(text: str):
    from protego import Protego

    # a truncated file (the fetcher's byte cap) may end in half a line: drop it rather than misread it
    return Protego.parse(text.lstrip("\ufeff"))


def _verdict(text: str, agent: str, url: str, *, explicit_only: bool) -> tuple[bool, str, str] | None:
    """(allowed, group's user agent, deciding line) for `agent`, or None when no group applies to it.

    protego's `can_fetch` decides. It does not say which line decided, so the line is read back from the rule
    set it chose (`_get_matching_rule_set`, `_rules` in match order: protego 0.7's internals, pinned in
    pyproject and covered by tests that fail if they change)."""
    parser = _parsed(text)
    rule_set = parser._get_matching_rule_set(agent.lower())
    if rule_set is None or (explicit_only and rule_set.user_agent == "*"):
        return None
    from protego._utils import _quote_path

    allowed = parser.can_fetch(url, agent.lower())
    quoted = _quote_path(url)
    line = next(
        (f"{r.field.title()}: {r.value._pattern}" for r in rule_set._rules if r.value.match(quoted)), ""
    )
    return allowed, rule_set.user_agent, line


def _path_url(url: str) -> str:
    """protego matches the path and query of a URL (a bare path would have its `?` quoted as part of the path)."""
    return "http://h" + _path_of(url)


def ai_txt(signal: SignalLike, url: str = "", agents: Sequence[str] | None = None) -> Decision:
    """Spawning's ai.txt (robots.txt syntax over file patterns): the group naming our agent, else `*`; the
    longest matching pattern wins, Allow on a tie; an empty Disallow allows everything."""
    rule = "ai-txt"
    target = _path_url(url)
    own = agents if agents is not None else _configured("WEBSIGNALS_OWN_AGENTS", DEFAULT_AGENTS)
    for agent in (*own, "*"):
        verdict = _verdict(signal.value, agent, target, explicit_only=False)
        if verdict is None:
            continue
        allowed, group, line = verdict
        if not line:
            return _allow(rule, f"no ai.txt rule for User-Agent {group} matches {_path_of(url)}", signal)
        if allowed:
            return _allow(rule, f"ai.txt {line} for User-Agent {group}", signal)
        return _deny(rule, f"ai.txt {line} for User-Agent {group}", signal)
    return _allow(rule, "ai.txt has no group for us or for every agent", signal)


def _configured(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list from Django settings when configured (the one place these rules read settings, so that every
    caller, manifest shards included, judges by the same agent lists); the default for a pure caller."""
    try:
        from django.conf import settings

        return tuple(getattr(settings, name))
    except Exception:  # no Django settings
        return default


def robots_txt(signal: SignalLike, url: str = "", agents: Sequence[str] | None = None) -> Decision:
    """The groups of robots.txt that name an AI crawler (agents): the first of them that disallows the URL
    denies. A `*` group does not count: it speaks to every crawler, search engines included, and says nothing
    about training."""
    rule = "robots-txt"
    target = _path_url(url)
    named = []
    wanted = tuple(agents) if agents is not None else _configured("WEBSIGNALS_AI_AGENTS", DEFAULT_AI_AGENTS)
    for agent in _with_groups(signal.value, wanted):
        verdict = _verdict(signal.value, agent, target, explicit_only=True)
        if verdict is None:
            continue
        allowed, group, line = verdict
        named.append(agent)
        if not allowed:
            return _deny(rule, f"robots.txt {agent} {line}", signal)
    if not named:
        return _allow(rule, "robots.txt has no group for an AI crawler", signal)
    return _allow(rule, f"robots.txt allows {_path_of(url)} to {', '.join(named)}", signal)


@lru_cache(maxsize=256)
def _with_groups(text: str, agents: tuple[str, ...]) -> tuple[str, ...]:
    """The agents a robots.txt has a group of their own for: the only ones worth judging each URL against (a
    file names a few of the twenty AI crawlers, and a check of 10,000 URLs must not ask protego 200,000 times)."""
    parser = _parsed(text)
    return tuple(
        a for a in agents if (found := parser._get_matching_rule_set(a.lower())) and found.user_agent != "*"
    )


WEB_RULES = {"tdmrep": tdmrep, "x_robots_tag": x_robots_tag, "ai_txt": ai_txt, "robots_txt": robots_txt}
