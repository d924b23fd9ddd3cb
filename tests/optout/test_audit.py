"""The keyed, hash-chained audit log: every request and state change lands in it, and verify_audit names each way
of tampering with it (an edited row, a deleted one, a cut tail, a rewrite without the key, a published anchor that
no longer matches)."""

import os
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.urls import reverse

from optout import audit, services
from optout.models import AuditEntry, AuditHead
from tests.optout.conftest import client_for
from tests.provenance.factories import AssetFactory


@pytest.fixture
def logged_changes(artist, operator):
    work = AssetFactory()
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk], reason="mine")
    services.optout_approve(optout=optout, operator=operator)
    services.optout_revoke(optout=optout, artist=artist)
    services.audit_append(event="rule.denied", payload={"asset_id": work.pk, "rule": "iptc-dmi"})
    return optout


def _verify_fails(*args) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", *args)
    return str(failure.value)


def test_requests_state_changes_and_rule_decisions_are_chained(logged_changes, capsys):
    rows = list(AuditEntry.objects.values_list("seq", "event", "prev_hash", "hash", "key_id"))
    assert [r[1] for r in rows] == ["optout.requested", "optout.state", "optout.state", "rule.denied"]
    assert all(rows[i][2] == rows[i - 1][3] for i in range(1, len(rows)))
    assert {r[4] for r in rows} == {audit.key_id(audit.audit_key())}
    call_command("verify_audit")
    assert "4 rows verified" in capsys.readouterr().out


def test_a_pending_request_is_logged_with_its_reason_when_made(artist):
    work = AssetFactory()
    body = {"scope": "works", "asset_ids": [work.pk], "reason": "I drew this in 2019"}
    response = client_for(artist).post(reverse("optout-list"), body, format="json")
    assert response.status_code == 201 and response.json()["status"] == "pending"
    entry = AuditEntry.objects.get(event="optout.requested")
    assert entry.payload["optout_id"] == response.json()["id"]
    assert entry.payload["reason"] == "I drew this in 2019"
    assert (entry.payload["artist_id"], entry.payload["asset_ids"]) == (artist.pk, [work.pk])
    assert not AuditEntry.objects.filter(event="optout.state").exists()  # nothing was activated


def test_verify_audit_names_an_edited_row(logged_changes):
    AuditEntry.objects.filter(seq=3).update(payload={"to": "pending"})
    assert "row 3 (edited)" in _verify_fails()


def test_verify_audit_names_a_deleted_middle_row(logged_changes):
    AuditEntry.objects.filter(seq=2).delete()
    assert "row 2 (deleted)" in _verify_fails()


def test_verify_audit_names_a_cut_tail(logged_changes):
    AuditEntry.objects.filter(seq__gte=3).delete()
    assert "(truncated)" in _verify_fails()


def test_a_cut_tail_with_the_head_rewound_is_caught_by_the_published_anchor(logged_changes, tmp_path, capsys):
    call_command("audit_anchor", "--write", str(tmp_path / "anchor.txt"))
    assert "seq=4 hash=" in capsys.readouterr().out
    call_command("verify_audit", "--anchor-file", str(tmp_path / "anchor.txt"))
    third = AuditEntry.objects.get(seq=3)
    AuditEntry.objects.filter(seq__gte=4).delete()
    AuditHead.objects.filter(pk=1).update(seq=3, hash=third.hash)
    call_command("verify_audit")  # the shorter chain is consistent in itself...
    message = _verify_fails("--anchor-file", str(tmp_path / "anchor.txt"))
    assert "row 4 (truncated)" in message and "anchor was published at row 4" in message


def _rewrite_without_the_key(change_seq: int) -> None:
    """What someone with the database but not the key can do: change a row, then recompute every hash and the
    head with the published algorithm and a key of their own."""
    prev = audit.GENESIS_HASH
    for entry in AuditEntry.objects.order_by("seq"):
        if entry.seq == change_seq:
            entry.payload = {**entry.payload, "to": "rejected"}
        entry.prev_hash = prev
        entry.hash = audit.entry_hash(
            key=b"a guess", prev_hash=prev, seq=entry.seq, event=entry.event, payload=entry.payload,
            created_at=audit._timestamp(entry.created_at),
        )  # fmt: skip
        entry.save()
        prev = entry.hash
    AuditHead.objects.filter(pk=1).update(hash=prev)


def test_verify_audit_names_a_full_rewrite_with_recomputed_hashes(logged_changes):
    _rewrite_without_the_key(change_seq=2)
    message = _verify_fails()
    assert "(rewritten)" in message and "without the audit key" in message


def test_verify_audit_names_a_mismatch_with_a_given_anchor(logged_changes, capsys):
    call_command("audit_anchor")
    anchor = capsys.readouterr().out.strip()
    _rewrite_without_the_key(change_seq=2)
    message = _verify_fails("--anchor", anchor)
    assert "row 4 (anchor-mismatch)" in capsys.readouterr().err
    assert "anchor-mismatch" in message


def test_a_malformed_anchor_is_a_clear_error(logged_changes):
    assert "not an audit anchor" in _verify_fails("--anchor", "yesterday's head")


def _write_legacy_chain(count: int) -> None:
    """Rows as the unkeyed log wrote them before the upgrade: plain SHA-256, key_id ''."""
    from django.utils import timezone

    prev = audit.GENESIS_HASH
    for seq in range(1, count + 1):
        created = timezone.now()
        digest = audit.entry_hash(
            key=None, prev_hash=prev, seq=seq, event="optout.state", payload={"n": seq},
            created_at=audit._timestamp(created),
        )  # fmt: skip
        AuditEntry.objects.create(
            seq=seq, event="optout.state", payload={"n": seq}, created_at=created, prev_hash=prev, hash=digest
        )
        prev = digest
    AuditHead.objects.update_or_create(pk=1, defaults={"seq": count, "hash": prev})


def test_an_unkeyed_log_is_reported_until_audit_rekey_rehashes_it(db, capsys):
    _write_legacy_chain(3)
    audit.append(event="after.upgrade", payload={})  # a keyed row on top, before the operator re-keys
    assert "row 1 (unkeyed)" in _verify_fails()
    call_command("audit_rekey")
    assert "re-keyed 4 rows" in capsys.readouterr().out
    call_command("verify_audit")
    assert AuditEntry.objects.last().event == "audit.rekeyed"
    assert not AuditEntry.objects.filter(key_id="").exists()


def test_audit_rekey_refuses_a_log_that_was_already_tampered_with(db):
    _write_legacy_chain(3)
    AuditEntry.objects.filter(seq=2).update(payload={"n": 99})
    with pytest.raises(CommandError, match="refusing to re-key a broken log: row 2 \\(edited\\)"):
        call_command("audit_rekey")


def test_the_key_comes_from_a_file_made_private_on_first_use(db, settings, tmp_path):
    settings.PROVENANT_AUDIT_KEY = ""
    settings.PROVENANT_AUDIT_KEY_FILE = tmp_path / "audit.key"
    audit.append(event="first", payload={})
    assert os.stat(tmp_path / "audit.key").st_mode & 0o777 == 0o600
    call_command("verify_audit")
    (tmp_path / "audit.key").write_text("another key\n")
    assert "(rewritten)" in _verify_fails()


def test_without_a_key_and_without_creating_one_the_log_refuses_to_append(db, settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    settings.PROVENANT_AUDIT_KEY, settings.PROVENANT_AUDIT_KEY_CREATE = "", False
    settings.PROVENANT_AUDIT_KEY_FILE = tmp_path / "missing.key"
    with pytest.raises(ImproperlyConfigured, match="No audit key"):
        audit.append(event="x", payload={})


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")

    def writer(n):
        try:
            for i in range(10):
                audit.append(event="test", payload={"writer": n, "i": i})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit.verify()
    assert (report.checked, report.problems) == (40, [])
