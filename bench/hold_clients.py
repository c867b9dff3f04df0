"""Opens N authenticated connections (libpq via psycopg 3, SCRAM as configured) to one pooler,
runs one query on each so it has been served once, prints 'ready N', then holds them all idle
until its standard input closes. Used by bench/memory.sh; several run side by side because
one process may hold at most 20,000 open files here.
usage: hold_clients.py CONNINFO N
"""
import os
import sys

# Thousands of connections: descriptors above 1024, which select() cannot wait on.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_epoll")
import psycopg  # noqa: E402


def main():
    conninfo, n = sys.argv[1], int(sys.argv[2])
    held = []
    for _ in range(n):
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=30)
        conn.execute("SELECT 1").fetchone()
        held.append(conn)
    print(f"ready {len(held)}", flush=True)
    sys.stdin.read()
    for conn in held:
        conn.close()


if __name__ == "__main__":
    main()
