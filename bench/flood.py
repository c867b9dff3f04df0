"""Opens N raw TCP connections to a pooler and leaves each stalled before login, in one of three
ways, then prints 'ready N' and holds them until its standard input closes:
  claim60mb  a startup header claiming a 60,000,000-byte packet (13 bytes sent)
  half       the first half of a real startup packet
  midscram   a startup packet and a SCRAM client-first-message; the server-first is never
             answered
usage: flood.py PORT KIND N
"""
import socket
import struct
import sys

PROTOCOL_3 = 196608


def startup(user="app", database="app"):
    body = struct.pack("!I", PROTOCOL_3)
    body += b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


def read_message(s):
    head = b""
    while len(head) < 5:
        chunk = s.recv(5 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    length = struct.unpack("!I", head[1:5])[0]
    body = b""
    while len(body) < length - 4:
        chunk = s.recv(length - 4 - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return head[:1], body


def stall(port, kind):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    if kind == "claim60mb":
        s.sendall(struct.pack("!II", 60_000_000, PROTOCOL_3) + b"user\0")
    elif kind == "half":
        packet = startup()
        s.sendall(packet[: len(packet) // 2])
    elif kind == "midscram":
        s.sendall(startup())
        tag, _ = read_message(s)
        assert tag == b"R", tag
        first = b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL"
        body = b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first
        s.sendall(b"p" + struct.pack("!I", len(body) + 4) + body)
        tag, _ = read_message(s)
        assert tag == b"R", tag
    return s


def main():
    port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    held = [stall(port, kind) for _ in range(n)]
    print(f"ready {len(held)}", flush=True)
    sys.stdin.read()
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
