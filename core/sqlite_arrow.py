"""python -m core.sqlite_arrow DATABASE BATCH_ROWS < [sql, params] as JSON: the rows of one SQLite query as an
Arrow IPC stream on standard output, read by the ADBC driver (its batches built in C).

core.arrowquery runs this as a child process, never in its own: the ADBC driver links a SQLite library of its own,
and two SQLite libraries in one process break each other's locks (POSIX locks belong to the process, so closing
the file in one releases the other's, the WAL's shared memory included). No Django here: the child starts in a
fraction of a second.
"""

from __future__ import annotations

import json
import sys
from contextlib import closing

import adbc_driver_manager
import adbc_driver_sqlite
import pyarrow as pa


def write_rows(database: str, batch_rows: int, sql: str, params: list, out) -> None:
    with (
        closing(adbc_driver_sqlite.connect(database)) as db,
        closing(adbc_driver_manager.AdbcConnection(db)) as connection,
        closing(adbc_driver_manager.AdbcStatement(connection)) as statement,
    ):
        statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
        statement.set_sql_query(sql)
        if params:
            statement.bind(
                pa.record_batch([pa.array([p]) for p in params], names=[str(i) for i in range(len(params))])
            )
        stream, _ = statement.execute_query()
        with pa.RecordBatchReader._import_from_c(stream.address) as reader:
            with pa.ipc.new_stream(out, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)


if __name__ == "__main__":
    sql, params = json.load(sys.stdin)
    try:
        write_rows(sys.argv[1], int(sys.argv[2]), sql, params, sys.stdout.buffer)
    except adbc_driver_manager.Error as exc:
        # one line for the parent to show: the driver's words, not a traceback
        sys.exit(" ".join(str(exc).split()))
