"""Domain names as artists claim and opt out of them: validated as DNS hostnames, never as patterns.

A claimed domain is matched exactly and by parent label (`art.example.com` is under `example.com`), so anything
that is not a plain hostname (a wildcard, a port, userinfo, a path, an address) is refused here rather than
reaching a lookup where it could act as one. Public suffixes (`co.uk`, `github.io`) are refused too: nobody can
prove they own every site under one, and a claim of one would cover strangers' sites.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

import idna

from core.exceptions import ApplicationError
from core.urlnorm import normalize_host

_LDH_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAX_HOSTNAME = 253


@lru_cache(maxsize=1)
def _public_suffixes():
    from publicsuffixlist import PublicSuffixList

    # the list bundled with the package: no download at run time
    return PublicSuffixList()


def _refuse(raw: str, why: str) -> ApplicationError:
    return ApplicationError(
        f"{raw[:100]!r} is not a domain name you can claim: {why}.", extra={"domain": raw[:255]}
    )


def clean_domain(raw: str) -> str:
    """The hostname in the form keys use (lowercase, IDNA A-labels, no `www.`), or an ApplicationError (400)."""
    text = (raw or "").strip().lower().rstrip(".")
    if not text:
        raise _refuse(raw, "it is empty")
    if any(ch in text for ch in ":/@\\?#%*[] \t"):
        raise _refuse(raw, "give the bare host name, without a scheme, port, path, user or wildcard")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        raise _refuse(raw, "it is an address, not a name")
    try:
        host = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise _refuse(raw, f"not a valid internationalised name ({exc})") from None
    host = normalize_host(host)
    labels = host.split(".")
    if len(host) > _MAX_HOSTNAME or len(labels) < 2 or not all(_LDH_LABEL.match(label) for label in labels):
        raise _refuse(raw, "each label must be letters, digits or inner hyphens, at most 63 long")
    if _public_suffixes().is_public(host):
        raise _refuse(raw, "it is a public suffix, under which anyone can register a site")
    return host
