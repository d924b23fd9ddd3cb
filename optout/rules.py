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
from collections.abc import Iterable

# the web's own signals (TDMRep, X-Robots-Tag, ai.txt, robots.txt) are judged by websignals' rules
from websignals.rules import (  # noqa: F401 (re-exported: the rules of every signal kind live here)
    DEFAULT_AGENTS,
    WEB_RULES,
    Decision,
    SignalLike,
    _allow,
    _deny,
    ai_txt,
    parse_x_robots_tag,
    pattern_matches,
    robots_txt,
    tdmrep,
    x_robots_tag,
)

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


# --- dispatch --------------------------------------------------------------------------------------------------

RULES = {
    "iptc_data_mining": iptc_data_mining,
    "c2pa_training_mining": c2pa_training_mining,
    **WEB_RULES,
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
