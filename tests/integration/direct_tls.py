"""PostgreSQL 17's direct TLS handshake against pgmux, for clients whose libpq is older.

Usage: direct_tls.py PORT CA_FILE ALPN   (ALPN "-" offers none)
Opens TCP, starts TLS at once (no SSLRequest) with the given ALPN protocol, verifies pgmux's
certificate, sends a StartupMessage for user "app", and prints what the first reply was:
"auth-request CODE" for an Authentication message, "error SQLSTATE" for an ErrorResponse,
"closed" if the connection ended without a message, "handshake-failed REASON" otherwise.
"""
import socket
import ssl
import struct
import sys


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main():
    port, ca_file, alpn = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca_file)
    if alpn != "-":
        ctx.set_alpn_protocols([alpn])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
    except (ssl.SSLError, OSError) as e:
        print("handshake-failed", e)
        return
    params = b"user\0app\0database\0app\0\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    try:
        head = read_exact(sock, 5)
    except (ssl.SSLError, OSError):
        head = None
    if head is None:
        print("closed")
        return
    kind, length = head[:1], struct.unpack("!i", head[1:])[0]
    body = read_exact(sock, length - 4) or b""
    if kind == b"R":
        print("auth-request", struct.unpack("!i", body[:4])[0], sock.selected_alpn_protocol())
    elif kind == b"E":
        fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
        print("error", fields.get(b"C", b"?").decode(), fields.get(b"M", b"").decode())
    else:
        print("unexpected", kind)


main()
