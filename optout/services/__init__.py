"""Writes of the opt-out app, one module per capability (accounts live in optout.accounts):

- claims: domain and contributor-identity claims and their verification;
- optouts: opt-out requests, planned, saved and keyed;
- transitions: the state machine every state change goes through, and the ownership gate it runs;
- publishing: the audit log and the registry clock that every published change moves.

The names below are the app's service surface, imported as `from optout import services`.
"""

from optout.services.claims import (
    contributor_claim_create,
    contributor_claim_review,
    domain_claim_create,
    domain_claim_verify,
)
from optout.services.optouts import near_copies_of, optout_create
from optout.services.publishing import audit_append, registry_touch
from optout.services.transitions import ALLOWED_TRANSITIONS, optout_approve, optout_reject, optout_revoke

__all__ = [
    "ALLOWED_TRANSITIONS",
    "audit_append",
    "contributor_claim_create",
    "contributor_claim_review",
    "domain_claim_create",
    "domain_claim_verify",
    "near_copies_of",
    "optout_approve",
    "optout_create",
    "optout_reject",
    "optout_revoke",
    "registry_touch",
]
