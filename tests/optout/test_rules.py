"""The signal rules are pure functions: each value below is a case the rule must decide, with its reason."""

import json
from dataclasses import dataclass

import pytest

from optout import rules


@dataclass
class Sig:
    kind: str
    value: str
    location: str = "test"
    domain: str = ""


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("DMI-UNSPECIFIED", True),
        ("DMI-ALLOWED", True),
        ("DMI-PROHIBITED-AIMLTRAINING", False),
        ("DMI-PROHIBITED-GENAIMLTRAINING", False),
        ("DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING", False),
        ("DMI-PROHIBITED", False),
        ("DMI-PROHIBITED-SEECONSTRAINT", False),
        ("DMI-CONSTRAINED", False),
        ("http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING", False),
        ("http://ns.useplus.org/ldf/vocab/DMI-ALLOWED", True),
    ],
)
def test_iptc_dmi_values_decide_generative_training(value, allowed):
    decision = rules.iptc_data_mining(Sig("iptc_data_mining", value, "XMP plus:DataMining"))
    assert decision.allowed is allowed
    assert decision.rule == "iptc-dmi"
    assert decision.location == "XMP plus:DataMining"
    assert decision.signal == value


@pytest.mark.parametrize(
    ("entries", "allowed"),
    [
        ({"c2pa.ai_generative_training": {"use": "notAllowed"}}, False),
        ({"c2pa.ai_training": {"use": "constrained", "constraint_info": "ask me"}}, False),
        ({"cawg.ai_generative_training": {"use": "notAllowed"}}, False),
        ({"cawg.ai_training": {"use": "allowed"}, "cawg.data_mining": {"use": "allowed"}}, True),
        ({"c2pa.ai_inference": {"use": "notAllowed"}}, True),
        ({"c2pa.data_mining": {"use": "notAllowed"}}, False),
    ],
)
def test_c2pa_training_mining_entries(entries, allowed):
    decision = rules.c2pa_training_mining(Sig("c2pa_training_mining", json.dumps({"entries": entries})))
    assert decision.allowed is allowed


def test_c2pa_plain_text_entries_are_read_too():
    assert not rules.c2pa_training_mining(Sig("c2pa_training_mining", "c2pa.ai_training=notAllowed")).allowed


def test_tdm_reservation_header_value_denies():
    assert not rules.tdmrep(Sig("tdmrep", "1", "HTTP tdm-reservation")).allowed
    assert not rules.tdmrep(Sig("tdmrep", "tdm-reservation: 1")).allowed
    assert rules.tdmrep(Sig("tdmrep", "0")).allowed


def test_tdmrep_json_longest_location_wins():
    body = json.dumps(
        [
            {"location": "/*", "tdm-reservation": 0},
            {"location": "/gallery/*", "tdm-reservation": 1},
            {"location": "/gallery/free/*", "tdm-reservation": 0},
        ]
    )
    signal = Sig("tdmrep", body, "https://example.org/.well-known/tdmrep.json")
    assert not rules.tdmrep(signal, "https://example.org/gallery/cat.png").allowed
    assert rules.tdmrep(signal, "https://example.org/gallery/free/cat.png").allowed
    assert rules.tdmrep(signal, "https://example.org/blog/cat.png").allowed
    denial = rules.tdmrep(signal, "https://example.org/gallery/cat.png")
    assert "/gallery/*" in denial.reason


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("noai", False),
        ("noindex, noimageai", False),
        ("googlebot: noai", False),
        ("googlebot: noindex, nofollow", True),
        ("unavailable_after: 25 Jun 2030 15:00:00 PST", True),
        ("noindex\notherbot: noimageai", False),
        ("all", True),
    ],
)
def test_x_robots_tag_noai_in_real_header_syntax(header, allowed):
    assert rules.x_robots_tag(Sig("x_robots_tag", header, "manifest column x_robots_tag")).allowed is allowed


def test_x_robots_tag_parser_scopes_directives_to_agent():
    assert rules.parse_x_robots_tag("googlebot: noai, noimageai") == [
        ("googlebot", "noai"),
        ("googlebot", "noimageai"),
    ]


AI_TXT = """
# ai.txt
User-Agent: *
Disallow: *.png
Disallow: /private/
Allow: /private/public-domain/
Allow: /private/public-domain/*.png

User-Agent: otherbot
Disallow: /
"""


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ex.org/art/cat.png", False),
        ("https://ex.org/art/cat.jpg", True),
        ("https://ex.org/private/cat.jpg", False),
        ("https://ex.org/private/public-domain/cat.jpg", True),
        ("https://ex.org/private/public-domain/cat.png", True),
    ],
)
def test_ai_txt_longest_match_precedence(url, allowed):
    decision = rules.ai_txt(Sig("ai_txt", AI_TXT, "https://ex.org/ai.txt", "ex.org"), url)
    assert decision.allowed is allowed, decision.reason


def test_ai_txt_group_for_our_agent_beats_the_wildcard_group():
    text = "User-Agent: *\nDisallow: /\n\nUser-Agent: provenant\nAllow: /\n"
    assert rules.ai_txt(Sig("ai_txt", text), "https://ex.org/a.png").allowed
    assert not rules.ai_txt(Sig("ai_txt", text), "https://ex.org/a.png", agents=("somebot",)).allowed


def test_evaluate_asset_signals_judges_own_and_domain_signals_against_the_url():
    decisions = rules.evaluate_asset_signals(
        [Sig("iptc_data_mining", "DMI-ALLOWED")],
        url="https://ex.org/art/cat.png",
        domain_rules=[Sig("ai_txt", AI_TXT, "https://ex.org/ai.txt", "ex.org")],
    )
    denial = rules.first_denial(decisions)
    assert [d.allowed for d in decisions] == [True, False]
    assert denial.rule == "ai-txt" and denial.location == "https://ex.org/ai.txt"
