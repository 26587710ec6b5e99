"""HTTP/1.1 on raw sockets: a lean client, so that the load generator costs little of the
cores it shares with the server under test."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

# -- HTTP/1.1 on raw sockets -----------------------------------------------------------


class Response:
    """An incremental HTTP/1.1 response parser: Content-Length or chunked bodies."""

    __slots__ = (
        "_buf",
        "_chunk_left",
        "_pos",
        "_seen",
        "body",
        "done",
        "headers",
        "keep",
        "length",
        "status",
    )

    def __init__(self, *, keep_body: bool = True) -> None:
        self._buf = bytearray()
        self._pos = 0
        # -1: a chunk-size line is next; -2: the CRLF after a chunk; -3: the final CRLF.
        self._chunk_left = -1
        self._seen = 0  # body bytes, when they are not kept
        self.status = 0
        self.headers: dict[str, str] = {}
        self.length: int | None = None  # None while headers unread; -1 for chunked
        self.body = bytearray()
        self.keep = keep_body
        self.done = False

    def feed(self, data: bytes) -> bool:
        """Take the next bytes of the stream; True once the response is complete."""
        self._buf += data
        if self.length is None and not self._headers():
            return False
        if self.length is not None and self.length >= 0:
            self._take(len(self._buf) - self._pos)
            self.done = len(self.body) >= self.length if self.keep else self._seen >= self.length
        else:
            self._chunks()
        if self._pos > 1 << 20:
            del self._buf[: self._pos]
            self._pos = 0
        return self.done

    def _take(self, n: int) -> None:
        if self.keep:
            self.body += memoryview(self._buf)[self._pos : self._pos + n]
        else:
            self._seen += n
        self._pos += n

    def _headers(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._pos = end + 4
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self.length = -1
        else:
            self.length = int(self.headers.get("content-length", "0"))
        return True

    def _chunks(self) -> None:
        buf = self._buf
        while not self.done:
            if self._chunk_left == -1:
                eol = buf.find(b"\r\n", self._pos)
                if eol < 0:
                    return
                size = int(bytes(buf[self._pos : eol]).split(b";")[0], 16)
                self._pos = eol + 2
                self._chunk_left = size if size else -3
            elif self._chunk_left == -3:  # after the last chunk: (no trailers) CRLF
                if len(buf) - self._pos < 2:
                    return
                self._pos += 2
                self.done = True
            elif self._chunk_left == -2:  # CRLF after a chunk's data
                if len(buf) - self._pos < 2:
                    return
                self._pos += 2
                self._chunk_left = -1
            else:
                n = min(self._chunk_left, len(buf) - self._pos)
                if n == 0:
                    return
                self._take(n)
                self._chunk_left -= n
                if self._chunk_left == 0:
                    self._chunk_left = -2


def request_bytes(
    method: str, path: str, port: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method in ("POST", "PUT") or body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def fetch(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30.0,
    keep_body: bool = True,
) -> Response:
    """One request on a fresh connection, read to the end of the response."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_bytes(method, path, port, {**(headers or {}), "Connection": "close"}))
        resp = Response(keep_body=keep_body)
        while not resp.done:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError(f"{method} {path}: connection closed mid-response")
            resp.feed(data)
    return resp


def fetch_json(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    resp = fetch(port, method, path, headers)
    if resp.status >= 400:
        raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {bytes(resp.body[:300])!r}")
    return json.loads(resp.body)
