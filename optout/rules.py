"""Machine-readable training opt-out signals as rules: pure functions, no Django, no I/O.

Each rule takes one signal (anything with `kind`, `value`, `location`, and optionally `domain`) and the URL of
the work it is judged for, and answers a `Decision`. A denial names the rule, the signal value and where it
was found. The question every rule answers is the same: may this work go into a *generative* model's
training set? Where a signal's vocabulary is finer than that (search indexing, inference, constraints we
cannot evaluate mechanically), the choice is documented next to the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import urlsplit

# Our crawler's user-agent tokens, matched case-insensitively against ai.txt groups and X-Robots-Tag prefixes.
DEFAULT_AGENTS: tuple[str, ...] = ("provenant",)


class SignalLike(Protocol):
    kind: str
    value: str
    location: str


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


# --- IPTC plus:DataMining ------------------------------------------------------------------------------------

# The PLUS "Data Mining" vocabulary. Everything that prohibits AI/ML training in general also prohibits generative
# training; "except search engine indexing" prohibits all else, training included; the SEECONSTRAINT /
# SEEEMBEDDEDRIGHTSEXPR values point at a free-text or ODRL constraint we cannot evaluate, so we deny (the
# safe reading of "prohibited, see the constraint").
IPTC_DMI: dict[str, tuple[bool, str]] = {
    "DMI-UNSPECIFIED": (True, "the rights holder made no data-mining statement"),
    "DMI-ALLOWED": (True, "data mining is allowed"),
    "DMI-PROHIBITED-AIMLTRAINING": (
        False,
        "AI/ML training is prohibited, which includes generative training",
    ),
    "DMI-PROHIBITED-GENAIMLTRAINING": (False, "generative AI/ML training is prohibited"),
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": (
        False,
        "all data mining except search-engine indexing is prohibited",
    ),
    "DMI-PROHIBITED": (False, "all data mining is prohibited"),
    "DMI-PROHIBITED-SEECONSTRAINT": (
        False,
        "prohibited subject to a constraint that cannot be checked mechanically",
    ),
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": (
        False,
        "prohibited subject to an embedded rights expression that cannot be checked mechanically",
    ),
}


def iptc_data_mining(signal: SignalLike, url: str = "") -> Decision:
    rule = "iptc-dmi"
    # values appear bare or as the vocabulary URI http://ns.useplus.org/ldf/vocab/DMI-...
    term = signal.value.strip().rstrip("/").rsplit("/", 1)[-1].upper()
    if term in IPTC_DMI:
        allowed, why = IPTC_DMI[term]
        return Decision(allowed, rule, f"IPTC {term}: {why}", signal.value, signal.location)
    if term.startswith("DMI-PROHIBITED") or term.startswith("DMI-CONSTRAIN"):
        return _deny(rule, f"IPTC {term}: an unlisted prohibition or constraint, read as prohibited", signal)
    return _allow(rule, f"IPTC value {term!r} is not a data-mining prohibition", signal)


# --- C2PA / CAWG training-and-data-mining assertion ----------------------------------------------------------

# Entries that govern building a generative model's training set. `ai_inference` (using the work as an input
# at inference time) does not; `data_mining` does, since assembling a training set is mining the work.
C2PA_RELEVANT = {"ai_training", "ai_generative_training", "data_mining"}


def _c2pa_entries(value: str) -> dict[str, str]:
    """{entry name: use} from an assertion's JSON (`{"entries": {...}}` or the entries map itself) or from
    `name=use` / `name: use` lines."""
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = data.get("data", data)
            entries = data.get("entries", data) if isinstance(data, dict) else {}
            out = {}
            for name, entry in entries.items() if isinstance(entries, dict) else []:
                use = entry.get("use") if isinstance(entry, dict) else entry
                if isinstance(use, str):
                    out[str(name)] = use
            return out
    out = {}
    for part in re.split(r"[,;\n]", text):
        if "=" in part or ":" in part:
            name, use = re.split(r"[=:]", part, maxsplit=1)
            out[name.strip()] = use.strip()
    return out


def c2pa_training_mining(signal: SignalLike, url: str = "") -> Decision:
    rule = "c2pa-training-mining"
    entries = _c2pa_entries(signal.value)
    for name, use in sorted(entries.items()):
        short = name.split(".", 1)[-1].lower()
        if short not in C2PA_RELEVANT:
            continue
        use_norm = use.strip().lower().replace("_", "")
        if use_norm == "notallowed":
            return _deny(rule, f"{name} is notAllowed", signal)
        if use_norm == "constrained":
            # constraint_info is free text: nothing a pipeline can verify, so it is a no until a person says yes
            return _deny(rule, f"{name} is constrained (constraints cannot be checked mechanically)", signal)
    if not entries:
        return _allow(rule, "no training-mining entries could be read", signal)
    return _allow(rule, "no training-mining entry forbids generative training", signal)


# --- TDMRep ----------------------------------------------------------------------------------------------------


def _path_of(url: str) -> str:
    if not url:
        return "/"
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
    except ValueError:
        return "/"
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


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
                best = (location, item.get("tdm-reservation", 0))
        if best is None:
            return _allow(rule, f"no tdmrep.json location matches {path}", signal)
        if _tdm_reserved(best[1]):
            return _deny(rule, f"tdm-reservation 1 for location {best[0]!r}", signal)
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


# --- ai.txt ----------------------------------------------------------------------------------------------------


def parse_ai_txt(text: str) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """[(user agents, [(\"allow\"|\"disallow\", pattern)])] in file order, robots.txt grouping rules."""
    groups: list[tuple[list[str], list[tuple[str, str]]]] = []
    agents: list[str] = []
    rules: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        field, value = (p.strip() for p in line.split(":", 1))
        field = field.lower()
        if field == "user-agent":
            if rules:  # a user-agent line after rules starts a new group
                groups.append((agents, rules))
                agents, rules = [], []
            agents.append(value.lower())
        elif field in ("allow", "disallow"):
            rules.append((field, value))
    if agents or rules:
        groups.append((agents or ["*"], rules))
    return groups


def ai_txt(signal: SignalLike, url: str = "", agents: Sequence[str] = DEFAULT_AGENTS) -> Decision:
    """The group naming our agent (else `*`) applies; the longest matching pattern wins, Allow on a tie;
    an empty Disallow allows everything."""
    rule = "ai-txt"
    groups = parse_ai_txt(signal.value)
    wanted = [a.lower() for a in agents]
    chosen = [r for ua, r in groups if any(a in wanted for a in ua)] or [r for ua, r in groups if "*" in ua]
    rules = [rule_ for group in chosen for rule_ in group]
    path = _path_of(url)
    best: tuple[int, bool, str] | None = None
    for field, pattern in rules:
        if not pattern:
            continue
        if pattern_matches(pattern, path):
            candidate = (len(pattern), field == "allow", pattern)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    if best is None:
        return _allow(rule, f"no ai.txt rule matches {path}", signal)
    if best[1]:
        return _allow(rule, f"ai.txt Allow: {best[2]} matches {path}", signal)
    return _deny(rule, f"ai.txt Disallow: {best[2]} matches {path}", signal)


# --- dispatch --------------------------------------------------------------------------------------------------

RULES = {
    "iptc_data_mining": iptc_data_mining,
    "c2pa_training_mining": c2pa_training_mining,
    "tdmrep": tdmrep,
    "x_robots_tag": x_robots_tag,
    "ai_txt": ai_txt,
}


def evaluate_signal(signal: SignalLike, url: str = "") -> Decision:
    rule = RULES.get(signal.kind)
    if rule is None:
        return Decision(
            True, "unknown", f"no rule for signal kind {signal.kind!r}", signal.value, signal.location
        )
    return rule(signal, url)


def evaluate_asset_signals(
    signals: Iterable[SignalLike], *, url: str = "", domain_rules: Iterable[SignalLike] = ()
) -> list[Decision]:
    """Every decision for one work: its own signals, then its domain's (ai.txt, tdmrep.json, headers recorded
    for the whole domain), each judged against the work's URL. Callers keep the denials:
    `[d for d in decisions if not d.allowed]`."""
    return [evaluate_signal(s, url) for s in [*signals, *domain_rules]]


def first_denial(decisions: Iterable[Decision]) -> Decision | None:
    return next((d for d in decisions if not d.allowed), None)
