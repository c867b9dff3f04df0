"""psycopg 3 pipeline mode with an error in the middle of each batch, through pgmux and
directly against PostgreSQL: both must give the client the same outcome.

Each round sends SELECT i and SELECT 1/0, fetches the first result (which flushes the batch
without a Sync, so the error arrives while the rest of the batch is unsent), then sends two
more statements and ends the pipeline (the Sync). The connection must stay usable afterwards.
Prints 'ok: N rounds'.
usage: psycopg_pipeline.py PGMUX_CONNINFO DIRECT_CONNINFO ROUNDS
"""
import os
import sys
import time

import psycopg


def outcome(exc):
    return "ok" if exc is None else type(exc).__name__


def one_round(conn, i):
    events = []
    try:
        with conn.pipeline():
            first = conn.execute("SELECT %s::int", (i,))
            conn.execute("SELECT 1/0")
            try:
                events.append(("first", first.fetchone()[0]))
            except psycopg.Error as e:
                events.append(("first", outcome(e)))
            time.sleep(0.01)
            later = conn.execute("SELECT %s::int + 1", (i,))
            conn.execute("SELECT %s::text", (str(i),))
            try:
                events.append(("later", later.fetchone()[0]))
            except psycopg.Error as e:
                events.append(("later", outcome(e)))
        events.append(("exit", "ok"))
    except psycopg.Error as e:
        events.append(("exit", outcome(e)))
    events.append(("after", conn.execute("SELECT %s::int * 2", (i,)).fetchone()[0]))
    with conn.pipeline():
        a = conn.execute("SELECT 'a'")
        b = conn.execute("SELECT 'b'")
    events.append(("clean pipeline", a.fetchone()[0] + b.fetchone()[0]))
    return events


def run(conninfo, rounds):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if os.environ.get("PGMUX_PIPELINE_TRACE"):  # the protocol messages, for debugging
            conn.pgconn.trace(sys.stderr.fileno())
        return [one_round(conn, i) for i in range(rounds)]


def main():
    through_pgmux, direct, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    expected = run(direct, rounds)
    got = run(through_pgmux, rounds)
    for i, (e, g) in enumerate(zip(expected, got)):
        if e != g:
            print(f"round {i}: PostgreSQL gave {e}, pgmux {g}")
            sys.exit(1)
    print(f"first round: {got[0]}")
    print(f"ok: {rounds} rounds")


if __name__ == "__main__":
    main()
