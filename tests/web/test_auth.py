"""The authentication middleware in front of a tiny Starlette app, driven through httpx."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runner.auth.htpasswd import Htpasswd
from runner.auth.principal import Principal
from runner.auth.ratelimit import RateLimiter
from runner.web.auth import AuthMiddleware
from runner.web.routing import SCOPE_KEY, principal_of

BOTH = ['Basic realm="runner", charset="UTF-8"', 'Bearer realm="runner"']


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"caller": principal_of(request.scope).caller})


inner = Starlette(
    routes=[
        Route("/_health", whoami),
        Route("/_runs", whoami),
        Route("/{path:path}", whoami, methods=["GET", "POST"]),
    ]
)


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def call():
    """Factory: send one request through an app, return the response (run in asyncio)."""

    def send(app, method, path, **kw) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, path, **kw)

        return asyncio.run(go())

    return send


@pytest.fixture
def secured(make_htpasswd, token_store):
    """Factory: the app behind the middleware with alice's password and the token store."""

    def build(**kw):
        users = Htpasswd(make_htpasswd(alice="wonder land"))
        return AuthMiddleware(inner, htpasswd=users, tokens=token_store, **kw)

    return build


def test_open_path_needs_no_credentials(call, secured):
    """/_health answers without credentials, as anonymous."""
    r = call(secured(), "GET", "/_health")
    assert r.status_code == 200 and r.json() == {"caller": "anonymous"}


def test_no_credentials_get_401_with_both_challenges(call, secured):
    """Without credentials: 401 problem+json challenging for Basic and Bearer."""
    r = call(secured(), "POST", "/deploy/site")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers.get_list("www-authenticate") == BOTH
    body = r.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["type"]
    assert "detail" in body


@pytest.mark.parametrize(
    "header",
    [
        basic("alice", "wrong"),
        basic("bob", "wonder land"),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Digest username=alice"},
        {"Authorization": "Bearer rnr_nothing"},
    ],
)
def test_bad_credentials_get_401(call, secured, header):
    """Wrong passwords, unknown users, garbage and other schemes are all refused."""
    r = call(secured(), "GET", "/_runs", headers=header)
    assert r.status_code == 401
    assert "wonder" not in r.text


def test_a_refused_token_is_named_invalid_in_the_challenge(call, secured):
    """A bad bearer token gets RFC 6750's invalid_token error in its challenge."""
    r = call(secured(), "GET", "/_runs", headers=bearer("rnr_x"))
    assert 'Bearer realm="runner", error="invalid_token"' in r.headers.get_list("www-authenticate")


def test_basic_credentials_give_the_user_principal(call, secured):
    """A right password (UTF-8, with spaces) puts user:alice in the scope."""
    r = call(secured(), "POST", "/deploy/site", headers=basic("alice", "wonder land"))
    assert r.status_code == 200 and r.json() == {"caller": "user:alice"}


def test_a_bearer_token_gives_the_token_principal(call, secured, token_store):
    """A valid token puts token:<name> in the scope."""
    token = token_store.create("ci-deploy", ["deploy/*"])
    r = call(secured(), "POST", "/deploy/site", headers=bearer(token))
    assert r.status_code == 200 and r.json() == {"caller": "token:ci-deploy"}


def test_a_token_outside_its_patterns_gets_403(call, secured, token_store):
    """Running a job outside the token's patterns is refused, naming token and job."""
    token = token_store.create("ci-deploy", ["deploy/*"])
    r = call(secured(), "POST", "/vm/delete", headers=bearer(token))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["caller"], body["job"]) == ("token:ci-deploy", "vm/delete")
    assert "deploy/*" in body["detail"] and token not in r.text


def test_a_token_may_read_outside_its_patterns(call, secured, token_store):
    """Patterns limit what a token runs; reading the run API is for authorization to judge."""
    token = token_store.create("ci-deploy", ["deploy/*"])
    assert call(secured(), "GET", "/vm/delete", headers=bearer(token)).status_code == 200
    assert call(secured(), "GET", "/_runs", headers=bearer(token)).status_code == 200


def test_unconfigured_means_anonymous(call):
    """With neither users nor tokens, requests pass as anonymous."""
    app = AuthMiddleware(inner, htpasswd=None, tokens=None)
    r = call(app, "POST", "/deploy/site")
    assert r.status_code == 200 and r.json() == {"caller": "anonymous"}


def test_a_webhook_principal_set_before_passes_through(call, secured):
    """A principal put in the scope by a webhook verifier is kept; its jobs still apply."""
    hook = Principal.webhook("github", "72d3162e", ("ci/deploy",))

    def verifier(app):
        async def verified(scope, receive, send):
            scope[SCOPE_KEY] = hook
            await app(scope, receive, send)

        return verified

    app = verifier(secured())
    r = call(app, "POST", "/ci/deploy")
    assert r.status_code == 200 and r.json() == {"caller": "webhook:github/72d3162e"}
    assert call(app, "POST", "/vm/delete").status_code == 403


def test_rate_limit_answers_429_then_recovers(call, secured, clock):
    """Past the burst a principal starting runs gets 429 with Retry-After, then passes again."""
    limiter = RateLimiter(rate=0.5, burst=2, clock=clock.monotonic)
    app = secured(limiter=limiter)
    alice = basic("alice", "wonder land")
    first = [call(app, "POST", "/deploy/site", headers=alice).status_code for _ in range(2)]
    assert first == [200] * 2
    r = call(app, "POST", "/deploy/site", headers=alice)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.headers["content-type"] == "application/problem+json"
    assert "user:alice" in r.json()["detail"]
    # Reading history is not limited.
    assert call(app, "GET", "/_runs", headers=alice).status_code == 200
    clock.advance(2)
    assert call(app, "POST", "/deploy/site", headers=alice).status_code == 200


def test_repeated_failed_logins_are_stopped_before_bcrypt(call, secured, clock, bcrypt_calls):
    """After the allowed failures an address gets 429 without a password check."""
    app = secured(failed_logins=RateLimiter(rate=0.1, burst=3, clock=clock.monotonic))
    wrong = basic("alice", "guess")
    assert [call(app, "GET", "/_runs", headers=wrong).status_code for _ in range(3)] == [401] * 3
    tried = len(bcrypt_calls)
    r = call(app, "GET", "/_runs", headers=basic("alice", "wonder land"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 10
    assert len(bcrypt_calls) == tried  # refused before any password check
    clock.advance(10)
    assert call(app, "GET", "/_runs", headers=basic("alice", "wonder land")).status_code == 200


def test_failures_lock_out_one_user_from_one_address_and_never_a_token(
    call, make_htpasswd, token_store, clock
):
    """Guessing bob's password blocks bob from that address only: alice there, bob
    elsewhere, and a token there still get in."""
    users = Htpasswd(make_htpasswd(alice="alice pw", bob="bob pw"))
    token = token_store.create("ci", ["**"])
    limiter = RateLimiter(rate=0.1, burst=3, clock=clock.monotonic)
    app = AuthMiddleware(inner, htpasswd=users, tokens=token_store, failed_logins=limiter)
    for _ in range(3):
        assert call(app, "GET", "/_runs", headers=basic("bob", "guess")).status_code == 401
    assert call(app, "GET", "/_runs", headers=basic("bob", "bob pw")).status_code == 429
    assert call(app, "GET", "/_runs", headers=basic("alice", "alice pw")).status_code == 200
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(5):
        call(app, "GET", "/_runs", headers={"Authorization": "Bearer rnr_wrong"})
    assert call(app, "GET", "/_runs", headers=bearer).status_code == 200
    elsewhere = AuthMiddleware(inner, htpasswd=users, tokens=token_store, failed_logins=limiter)
    scope_from = httpx.ASGITransport(app=elsewhere, client=("10.9.9.9", 1234))

    async def from_elsewhere() -> int:
        async with httpx.AsyncClient(transport=scope_from, base_url="http://t") as client:
            r = await client.get("/_runs", headers=basic("bob", "bob pw"))
            return r.status_code

    assert asyncio.run(from_elsewhere()) == 200


def test_only_configured_schemes_are_offered(call, token_store, make_htpasswd):
    """With tokens only, the challenge offers Bearer alone; with users, Basic and Bearer
    (a token may be created at any time)."""
    token_store.create("ci", ["**"])
    app = AuthMiddleware(inner, htpasswd=None, tokens=token_store)
    r = call(app, "GET", "/_runs", headers=basic("alice", "wonder land"))
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == ['Bearer realm="runner"']
    users = AuthMiddleware(inner, htpasswd=Htpasswd(make_htpasswd(a="b")), tokens=token_store)
    assert call(users, "GET", "/_runs").headers.get_list("www-authenticate") == BOTH


def test_credentials_are_required_from_the_first_token_and_stay_required(call, token_store):
    """A server that started with no credentials is open (loopback) until a token is
    created; then the token works at once, anonymous calls stop, and revoking every
    token does not open it again."""
    app = AuthMiddleware(inner, htpasswd=None, tokens=token_store)
    assert call(app, "GET", "/_runs").json() == {"caller": "anonymous"}
    token = token_store.create("ci", ["**"])
    assert call(app, "GET", "/_runs").status_code == 401
    with_token = call(app, "GET", "/_runs", headers={"Authorization": f"Bearer {token}"})
    assert with_token.json() == {"caller": "token:ci"}
    token_store.revoke("ci")
    assert call(app, "GET", "/_runs").status_code == 401
