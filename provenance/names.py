"""Cleaning credit strings honestly: the raw value is always kept (as an alias); the display name drops e-mail
addresses and markup; placeholders that name nobody are not turned into a person."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

EMAIL = re.compile(r"(?:mailto:)?([\w.+-]+@[\w-]+(?:\.[\w-]+)+)", re.IGNORECASE)
# `HASH(0x8a0ab9c)` is a Perl reference printed by a broken export, not a name.
PLACEHOLDERS = re.compile(
    r"^(hash\(0x[0-9a-f]+\)|unknown|anonymous|anon|n/?a|none|null|-+|\?+)$", re.IGNORECASE
)
EMPTY_BRACKETS = re.compile(r"[(\[<{]\s*[)\]>}]")


@dataclass(frozen=True)
class CleanName:
    display: str
    key: str  # spelling-insensitive identity: the same person under several spellings shares it


def name_key(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def clean_creator(raw: str) -> CleanName | None:
    """`Jean-Victor Balin (balin_j@epita.fr)` -> Jean-Victor Balin; `mailto:ralf@x.de` -> ralf; `HASH(0x1)` -> None."""
    text = " ".join(html.unescape(raw or "").split())
    if not text or PLACEHOLDERS.match(text):
        return None
    emails = [m.lower() for m in EMAIL.findall(text)]
    without_emails = EMPTY_BRACKETS.sub("", EMAIL.sub("", text))
    without_emails = " ".join(without_emails.strip(" ,;:-").split())
    if any(ch.isalpha() for ch in without_emails):
        return CleanName(display=without_emails[:300], key=name_key(without_emails)[:300])
    if emails:
        # An address alone: show only its local part (no harvestable addresses on public pages); the full
        # address is the identity, since two people can share a local part.
        return CleanName(display=emails[0].split("@")[0][:300], key=f"email:{emails[0]}"[:300])
    return None
