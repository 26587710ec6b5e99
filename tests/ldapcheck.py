"""A one-purpose LDAP server on loopback that PostgreSQL's ``ldap`` login asks: a simple
bind succeeds only when its password is an Entra-shaped token the project's sandbox
signed, for the audience of Azure Database for PostgreSQL, not expired.

PostgreSQL has no token login of its own; its LDAP "simple bind" method forwards the
password a client gave to an LDAP server, which is the hook used here to let a local
PostgreSQL accept exactly what Azure Database for PostgreSQL would (a fresh token for
``https://ossrdbms-aad.database.windows.net``) — checked by signature, not by a copy of a
known password. Only BindRequest and UnbindRequest are understood (RFC 4511, BER).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

AUDIENCE = "https://ossrdbms-aad.database.windows.net"


def _tlv(data: bytes, i: int) -> tuple[int, bytes, int]:
    tag, length = data[i], data[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[i : i + n], "big")
        i += n
    return tag, data[i : i + length], i + length


def _encode(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def bind_response(message_id: bytes, ok: bool) -> bytes:
    result = _encode(0x0A, bytes([0 if ok else 49]))  # success / invalidCredentials
    body = result + _encode(0x04, b"") + _encode(0x04, b"")
    return _encode(0x30, _encode(0x02, message_id) + _encode(0x61, body))


@contextmanager
def ldap_checker(check: Callable[[str, str], bool]) -> Iterator[tuple[int, list[str]]]:
    """Serve on 127.0.0.1:<port> until the block ends; ``check(dn, password)`` decides.
    Yields the port and the list of bind DNs seen, with their outcome."""
    seen: list[str] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            conn.settimeout(10)
            buf = b""
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 2:
                    try:
                        _, message, end = _tlv(buf, 0)
                    except IndexError:
                        break
                    if end > len(buf):
                        break
                    buf = buf[end:]
                    _, msgid, i = _tlv(message, 0)
                    op, body, _ = _tlv(message, i)
                    if op == 0x42:  # UnbindRequest
                        return
                    if op != 0x60:  # only BindRequest
                        return
                    _, _version, j = _tlv(body, 0)
                    _, dn, j = _tlv(body, j)
                    _, password, _ = _tlv(body, j)
                    ok = check(dn.decode(), password.decode(errors="replace"))
                    seen.append(f"{dn.decode()} {'ok' if ok else 'refused'}")
                    conn.sendall(bind_response(msgid, ok))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
