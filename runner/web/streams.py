"""Streaming a run to an HTTP client: text lines or server-sent events, batch by batch as
the batches commit (the encoders are :mod:`runner.wire`'s, shared with the CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Message, Receive, Scope, Send

from runner.records import EV_DONE, Event
from runner.wire import KEEPALIVE, encode_sse, encode_text


class TextStream:
    """ASGI response: a run's text, written batch by batch as the batches commit.

    Leaner than StreamingResponse on the hot path (one short run per request): no task
    group, and the batch holding ``done`` goes out with the end of the body in one write.
    A disconnect is watched for only once the run outlives its second batch (the first is
    its record); a caller that leaves ends this stream, never the run. An empty batch
    (``follow(idle=…)``: that long without an event) writes a keepalive line, so that
    proxies and load balancers that close idle connections (nginx: 60 s, Azure Load
    Balancer: 4 min) keep this one.
    """

    def __init__(
        self, batches: AsyncIterator[list[Event]], headers: dict[str, str], idle: float = 0
    ) -> None:
        self.batches = batches
        self.idle = idle
        self.quiet = 0.0
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.headers.append((b"content-type", b"text/plain; charset=utf-8"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The headers (with X-Run-Id) go out with the first committed batch: the run may
        # have been submitted without waiting for its record to be stored.
        started = False
        watcher: asyncio.Task[Message] | None = None
        batches = 0
        try:
            async for batch in self.batches:
                batches += 1
                if watcher is not None and watcher.done():
                    if watcher.result()["type"] == "http.disconnect":
                        return
                elif watcher is None and batches > 1 and not (batch and batch[-1].kind == EV_DONE):
                    # From the second batch on: a short run (its record, then its output
                    # with its end) is written out before a watch would be of any use.
                    watcher = asyncio.ensure_future(receive())
                if not batch:
                    if started:
                        await send(
                            {"type": "http.response.body", "body": self._keepalive(),
                             "more_body": True}
                        )  # fmt: skip
                    continue
                self.quiet = 0.0
                if not started:
                    start = {"type": "http.response.start", "status": 200, "headers": self.headers}
                    await send(start)
                    started = True
                chunk = encode_text(batch)
                if batch[-1].kind == EV_DONE:
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    return
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not started:  # pragma: no cover - follow always yields the `run` event
                await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()

    def _keepalive(self) -> bytes:
        self.quiet += self.idle
        return KEEPALIVE.format(seconds=self.quiet).encode()


async def sse_chunks(batches: AsyncIterator[list[Event]]) -> AsyncIterator[bytes]:
    """SSE frames, one chunk per committed batch."""
    async for batch in batches:
        yield encode_sse(batch)


async def text_chunks(batches: AsyncIterator[list[Event]]) -> AsyncIterator[bytes]:
    """Text lines, one chunk per batch (empty chunks skipped)."""
    async for batch in batches:
        chunk = encode_text(batch)
        if chunk:
            yield chunk
