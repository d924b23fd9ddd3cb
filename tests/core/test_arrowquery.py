"""Long reads as Arrow batches: through ADBC where a connection of its own sees the same rows, through Django's
cursor inside a transaction; SQLite's ADBC read in a child process, which leaves this process's SQLite
connections (and their WAL locks) alone."""

import sqlite3

import pyarrow as pa
import pytest
from django.db import DatabaseError, connection, transaction

from core import arrowquery
from provenance.models import Asset
from tests.provenance.factories import AssetFactory

TITLES = ["it's a work", "50% off", "plain", "naïve ☂"]
SCHEMA = pa.schema([("title", pa.string()), ("id", pa.int64())])


def titles_query():
    return Asset.objects.filter(title__in=TITLES[:3] + ["never"]).order_by("id").values_list("title", "id")


def rows(batches) -> list[tuple]:
    table = pa.Table.from_batches(list(batches), schema=SCHEMA)
    return list(zip(*(table.column(name).to_pylist() for name in SCHEMA.names), strict=True))


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Which path each read took."""
    taken: list[str] = []
    for name in ("_postgresql_batches", "_cursor_batches"):
        original = getattr(arrowquery, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            taken.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(arrowquery, name, spy)
    return taken


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the ADBC path under test is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_committed_rows_come_through_adbc_and_equal_what_the_cursor_reads(reads):
    works = [AssetFactory(title=title) for title in TITLES]
    expected = [(w.title, w.pk) for w in works[:3]]  # the quote and the percent sign survive the quoting

    assert rows(arrowquery.query_batches(titles_query(), SCHEMA)) == expected
    with transaction.atomic():
        assert rows(arrowquery.query_batches(titles_query(), SCHEMA, batch_rows=2)) == expected
    assert reads == ["_postgresql_batches", "_cursor_batches"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the ADBC path under test is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_where_adbc_cannot_connect_the_cursor_reads_the_rows(reads, monkeypatch, caplog):
    works = [AssetFactory(title=title) for title in TITLES]
    refused = {**connection.get_connection_params(), "dbname": "no_such_database"}
    monkeypatch.setattr(connection, "get_connection_params", lambda: refused)

    assert rows(arrowquery.query_batches(titles_query(), SCHEMA)) == [(w.title, w.pk) for w in works[:3]]
    assert reads == ["_postgresql_batches", "_cursor_batches"] and "ADBC cannot connect" in caplog.text


@pytest.mark.django_db
def test_inside_a_transaction_the_cursor_reads_the_rows_not_yet_committed(reads):
    works = [AssetFactory(title=title) for title in TITLES]

    batches = list(arrowquery.query_batches(titles_query(), SCHEMA, batch_rows=2))

    assert rows(batches) == [(w.title, w.pk) for w in works[:3]] and [len(b) for b in batches] == [2, 1]
    assert reads == ["_cursor_batches"]


@pytest.mark.django_db
def test_an_empty_query_reads_nothing():
    assert list(arrowquery.query_batches(Asset.objects.none().values_list("title", "id"), SCHEMA)) == []


def sqlite_read(path, sql: str, params: list, batch_rows: int = 2) -> list[pa.RecordBatch]:
    return list(arrowquery._child_batches(*arrowquery._sqlite_child(str(path), sql, params, batch_rows)))


def test_sqlite_rows_come_from_the_child_and_leave_this_process_connections_working(tmp_path):
    database = tmp_path / "registry.sqlite3"
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE work (title TEXT, id INTEGER)")
    writer.executemany("INSERT INTO work VALUES (?, ?)", [(t, i) for i, t in enumerate(TITLES)])
    writer.commit()
    reader = sqlite3.connect(database)
    assert reader.execute("SELECT count(*) FROM work").fetchone() == (
        4,
    )  # holds the WAL open in this process

    batches = sqlite_read(
        database, "SELECT title, id FROM work WHERE id >= ? AND title != ? ORDER BY id", [0, "plain"]
    )

    assert [b.num_rows for b in batches] == [2, 1]
    assert pa.Table.from_batches(batches).to_pylist() == [
        {"title": TITLES[0], "id": 0}, {"title": TITLES[1], "id": 1}, {"title": TITLES[3], "id": 3},
    ]  # fmt: skip
    writer.execute("INSERT INTO work VALUES ('after', 9)")
    writer.commit()
    assert reader.execute("SELECT count(*) FROM work").fetchone() == (5,)
    assert reader.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_failed_sqlite_read_raises_the_databases_own_message(tmp_path):
    sqlite3.connect(tmp_path / "empty.sqlite3").close()

    with pytest.raises(DatabaseError, match="no such table: work"):
        sqlite_read(tmp_path / "empty.sqlite3", "SELECT title FROM work", [])
