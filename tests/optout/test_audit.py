"""The hash-chained audit log: every state change lands in it, and verify_audit finds tampering."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from optout import audit, services
from optout.models import AuditEntry
from tests.optout.factories import AssetFactory


@pytest.fixture
def logged_changes(artist, operator):
    work = AssetFactory()
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    services.optout_approve(optout=optout, operator=operator)
    services.optout_revoke(optout=optout, artist=artist)
    services.audit_append(event="rule.denied", payload={"asset_id": work.pk, "rule": "iptc-dmi"})
    return optout


def test_state_changes_and_rule_decisions_are_chained(logged_changes, capsys):
    rows = list(AuditEntry.objects.values_list("seq", "event", "prev_hash", "hash"))
    assert [r[1] for r in rows] == ["optout.state", "optout.state", "rule.denied"]
    assert all(rows[i][2] == rows[i - 1][3] for i in range(1, len(rows)))
    call_command("verify_audit")
    assert "3 rows verified" in capsys.readouterr().out


def test_verify_audit_catches_a_row_edited_by_hand(logged_changes):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE optout_auditentry SET payload = jsonb_set(payload::jsonb, '{to}', '\"pending\"')::jsonb"
            " WHERE seq = 2"
            if connection.vendor == "postgresql"
            else "UPDATE optout_auditentry SET payload = '{}' WHERE seq = 2"
        )
    with pytest.raises(CommandError, match="row 2 .*edited"):
        call_command("verify_audit")


def test_verify_audit_catches_a_deleted_row(logged_changes):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM optout_auditentry WHERE seq = 2")
    with pytest.raises(CommandError, match="row 2 .*missing"):
        call_command("verify_audit")


def test_verify_audit_catches_a_deleted_last_row(logged_changes):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM optout_auditentry WHERE seq = 3")
    with pytest.raises(CommandError, match="missing"):
        call_command("verify_audit")


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
    checked, problem = audit.verify()
    assert (checked, problem) == (40, None)
