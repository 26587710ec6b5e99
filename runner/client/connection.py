"""A runner server as the client sees it: URL, credentials, trust, retries, refusals.

Credentials never go on a command line if avoidable: ``RUNNER_TOKEN`` (or
``RUNNER_USER``/``RUNNER_PASSWORD``) from the CI's secret store; ``--token`` exists for a
terminal. Nothing here prints or logs a credential.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from runner.errors import ConfigError, ServerRefused, Unreachable

# Statuses worth trying again: the queue is full, the server drains or its store hiccups
# (a start also retries 409: a copy of the same request is still being started).
RETRY_STATUS = frozenset((429, 502, 503, 504))


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter (AWS Architecture Blog, 2015): the
    n-th wait is uniform in [0, min(cap, base·2ⁿ)], so many clients cut off at once do
    not come back at once."""

    base: float = 0.2
    cap: float = 10.0
    tries: int = 30  # about two to three minutes of a server that does not answer

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


@dataclass(frozen=True, repr=False)
class Remote:
    """Where the server is and how to prove who we are."""

    url: str
    token: str | None = None
    user: str | None = None
    password: str | None = None
    cacert: Path | None = None

    def __repr__(self) -> str:
        return f"Remote(url={self.url!r})"  # never the token or the password

    @classmethod
    def from_options(
        cls,
        server: str | None,
        token: str | None,
        cacert: str | None,
        environ: Mapping[str, str] | None = None,
    ) -> Remote | None:
        """From flags, then ``RUNNER_*``; None when no server is named (work locally)."""
        env = os.environ if environ is None else environ
        url = server or env.get("RUNNER_URL")
        if not url:
            return None
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"--server {url!r}: give a URL such as https://runner.example:8443")
        ca = cacert or env.get("RUNNER_CACERT")
        if ca and not Path(ca).is_file():
            raise ConfigError(f"--cacert {ca}: no such file")
        return cls(
            url=url.rstrip("/"),
            token=token or env.get("RUNNER_TOKEN") or None,
            user=env.get("RUNNER_USER") or None,
            password=env.get("RUNNER_PASSWORD"),
            cacert=Path(ca) if ca else None,
        )


class Connection:
    """An HTTP client for one server; requests retried through drops and refusals said in
    words."""

    def __init__(self, remote: Remote, backoff: Backoff | None = None, *, read: float = 60.0):
        self.remote = remote
        self.backoff = backoff or Backoff()
        auth: httpx.Auth | None = None
        headers = {"User-Agent": "runner-client"}
        if remote.token:
            headers["Authorization"] = f"Bearer {remote.token}"
        elif remote.user:
            auth = httpx.BasicAuth(remote.user, remote.password or "")
        # The read timeout outlasts the server's heartbeats (15 s by default): a stream
        # silent for longer is a dead one, to be resumed elsewhere.
        self.http = httpx.Client(
            base_url=remote.url,
            headers=headers,
            auth=auth,
            verify=str(remote.cacert) if remote.cacert else True,
            timeout=httpx.Timeout(10.0, read=read),
            trust_env=True,
        )

    def close(self) -> None:
        self.http.close()

    def url(self, path: str) -> str:
        return self.remote.url + path

    def retrying(self, what: str, attempt: Callable[[], Any]) -> Any:
        """Call ``attempt`` until it returns: through transport errors and retryable
        statuses (raise :class:`Retry`), with backoff; Unreachable after every try."""
        last: str = ""
        for n in range(self.backoff.tries):
            try:
                return attempt()
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                wait = self.backoff.delay(n)
            except Retry as again:
                last = again.why
                wait = again.after if again.after is not None else self.backoff.delay(n)
            time.sleep(wait)
        raise Unreachable(
            f"{what}: no answer from {self.remote.url} after {self.backoff.tries} tries ({last})"
        )

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """A JSON answer, retried through drops; ServerRefused for a 4xx problem."""

        def attempt() -> Any:
            response = self.http.request(method, path, **kw)
            check(response)
            return response.json()

        return self.retrying(f"{method} {path}", attempt)

    @contextmanager
    def stream(
        self, method: str, path: str, retry: frozenset[int] = RETRY_STATUS, **kw: Any
    ) -> Iterator[httpx.Response]:
        """A streamed answer (not retried here: a stream resumes from where it was)."""
        with self.http.stream(method, path, **kw) as response:
            if response.status_code >= 400:
                response.read()
            check(response, retry)
            yield response


class Retry(Exception):
    """An answer that says: try again (after ``after`` seconds, if it says when)."""

    def __init__(self, why: str, after: float | None = None) -> None:
        self.why = why
        self.after = after
        super().__init__(why)


def check(response: httpx.Response, retry: frozenset[int] = RETRY_STATUS) -> None:
    """Raise Retry for a status in ``retry``, ServerRefused for another 4xx/5xx."""
    status = response.status_code
    if status < 400:
        return
    try:
        problem: dict[str, Any] = response.json()
        if not isinstance(problem, dict):
            raise ValueError
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    if status in retry:
        after = response.headers.get("retry-after")
        wait = float(after) if after and after.isdigit() else None
        raise Retry(f"{status} {problem.get('detail', '')}".strip(), wait)
    raise ServerRefused(status, problem)
