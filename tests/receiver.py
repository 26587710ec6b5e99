"""A real HTTP server on loopback that records what it is sent and answers as told: the
notification receiver, Slack's response_url and Web API, a Teams Workflows URL.

    with Receiver() as r:
        r.answer("/hook", 503, 503, 503)   # the first three tries fail, then 200
        ...
        (got,) = r.wait_for("/hook", 1)
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what it was answered
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self._answers: dict[str, deque[int]] = defaultdict(deque)
        self._bodies: dict[str, bytes] = {}
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                path = self.path.split("?")[0]
                with receiver._lock:
                    queue = receiver._answers[path]
                    status = queue.popleft() if queue else 200
                    receiver.received.append(
                        Received(
                            path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.time(),
                        )  # fmt: skip
                    )
                    receiver._lock.notify_all()
                    answer = receiver._bodies.get(path, b"ok") if status < 300 else b"nope"
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, *statuses: int, body: bytes | None = None) -> None:
        """The next answers to ``path``, in order (then 200); ``body`` for the 2xx ones."""
        with self._lock:
            self._answers[path].extend(statuses)
            if body is not None:
                self._bodies[path] = body

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, within: float = 15.0) -> list[Received]:
        """The first ``count`` requests to ``path``, waiting for them to arrive."""
        deadline = time.monotonic() + within
        with self._lock:
            while len(got := [r for r in self.received if r.path == path]) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{path}: {len(got)} requests, expected {count}"
                self._lock.wait(left)
        return got[:count]

    def delivered(self, path: str, within: float = 15.0) -> Received:
        """The first request to ``path`` answered 2xx."""
        deadline = time.monotonic() + within
        with self._lock:
            while not (ok := [r for r in self.received if r.path == path and r.status < 300]):
                left = deadline - time.monotonic()
                assert left > 0, f"{path}: nothing delivered ({len(self.at(path))} tries)"
                self._lock.wait(left)
        return ok[0]
