"""psycopg 3 workload through pgmux in transaction mode, run by test_transaction_pooling.cpp.

Each thread has its own connection with psycopg's default prepare_threshold (so repeated
queries are prepared server-side after a few runs) and checks every result row by row.
Usage: /usr/bin/python3 psycopg_workload.py CONNINFO THREADS
Prints "ok: N threads" and exits 0, or prints the failures and exits 1.
"""
import sys
import threading
import traceback

import psycopg


def work(conninfo: str, tid: int) -> None:
    table = f"it_psy_{tid}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.prepare_threshold == 5
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, label text)")

        # Repeated parametrised queries: prepared by psycopg after prepare_threshold runs,
        # then executed on whichever server pgmux hands out.
        for i in range(30):
            row = conn.execute("SELECT %s::int * 3, %s::text || '!'", (i, f"t{tid}")).fetchone()
            assert row == (i * 3, f"t{tid}!"), row

        # executemany inside a transaction.
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {table} (id, label) VALUES (%s, %s)",
                    [(i, f"row{i}") for i in range(100)],
                )
        rows = conn.execute(f"SELECT id, label FROM {table} ORDER BY id").fetchall()
        assert rows == [(i, f"row{i}") for i in range(100)], rows[:3]

        # Savepoints: an inner block that fails rolls back alone.
        with conn.transaction():
            conn.execute(f"UPDATE {table} SET label = 'outer' WHERE id = 0")
            try:
                with conn.transaction():
                    conn.execute(f"UPDATE {table} SET label = 'inner' WHERE id = 1")
                    conn.execute("SELECT 1 / 0")
            except psycopg.errors.DivisionByZero:
                pass
        got = conn.execute(f"SELECT label FROM {table} WHERE id IN (0, 1) ORDER BY id").fetchall()
        assert got == [("outer",), ("row1",)], got

        # Rollback after an error in an explicit (non-autocommit) transaction.
        conn.autocommit = False
        try:
            conn.execute(f"INSERT INTO {table} VALUES (0, 'duplicate')")
            raise AssertionError("duplicate key accepted")
        except psycopg.errors.UniqueViolation:
            conn.rollback()
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (100,)
        conn.commit()
        conn.autocommit = True

        # COPY in and out.
        with conn.cursor() as cur:
            with cur.copy(f"COPY {table} (id, label) FROM STDIN") as copy:
                for i in range(100, 300):
                    copy.write_row((i, f"copied{i}"))
            out = []
            with cur.copy(f"COPY (SELECT id, label FROM {table} WHERE id >= 100 ORDER BY id) TO STDOUT") as copy:
                for row in copy.rows():
                    out.append(row)
        assert out == [(str(i), f"copied{i}") for i in range(100, 300)], out[:3]

        # A server-side (named) cursor inside a transaction.
        with conn.transaction():
            with conn.cursor(name=f"cur_{tid}") as cur:
                cur.execute("SELECT g, g * g FROM generate_series(1, 1000) g")
                seen = 0
                while True:
                    chunk = cur.fetchmany(137)
                    if not chunk:
                        break
                    for g, sq in chunk:
                        seen += 1
                        assert g == seen and sq == seen * seen, (g, sq)
                assert seen == 1000

        # The same statements again, now prepared: results still right.
        for i in range(10):
            row = conn.execute(f"SELECT label FROM {table} WHERE id = %s", (i + 100,)).fetchone()
            assert row == (f"copied{i + 100}",), row
        conn.execute(f"DROP TABLE {table}")


def main() -> int:
    conninfo, threads = sys.argv[1], int(sys.argv[2])
    failures = []
    lock = threading.Lock()

    def run(tid: int) -> None:
        try:
            work(conninfo, tid)
        except Exception:
            with lock:
                failures.append(f"thread {tid}:\n{traceback.format_exc()}")

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=200)
    if any(w.is_alive() for w in workers):
        failures.append("threads still running after 200 s")
    if failures:
        print(f"{len(failures)} failure(s)")
        for f in failures[:5]:
            print(f)
        return 1
    print(f"ok: {threads} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
