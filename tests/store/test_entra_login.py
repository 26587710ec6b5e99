"""``store_auth = "azure"``: the runner logs in to PostgreSQL with an Entra token from its
own identity (the sandbox's managed identity here), no password stored anywhere.

The local PostgreSQL accepts the login through its ``ldap`` method: the password it is
given goes to tests/ldapcheck.py, which accepts it only if the sandbox signed it, for the
audience of Azure Database for PostgreSQL, and it has not expired.

What this proves: the runner asks the jobs' credential for a token with the right
audience, passes it as the password of each new pool connection, and never writes it
down. What it does not: Azure's own checks (the tenant, the role created with
``pgaadauth_create_principal`` matching the identity's name or object id), TLS to the
server, or a token refresh at the real 24 h expiry (azure-identity refreshes a cached
token with under 5 minutes left; new connections then get the new one).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import asyncpg
import pytest

from runner.sandbox.tokens import TokenError, TokenIssuer, decode_unverified
from tests.conftest import files_containing, wait_final
from tests.ldapcheck import AUDIENCE, ldap_checker

ROLE = "entra_runner"


def _hba(cluster, port: int) -> None:
    """Logins of ROLE go to the LDAP checker (first match wins: put it on top)."""
    hba = cluster.data_dir / "pg_hba.conf"
    line = (
        f"local all {ROLE} ldap ldapserver=127.0.0.1 ldapport={port} "
        'ldapprefix="cn=" ldapsuffix=",dc=runner"\n'
    )
    hba.write_text(line + hba.read_text())
    cluster.psql("SELECT pg_reload_conf()")


def _unhba(cluster) -> None:
    hba = cluster.data_dir / "pg_hba.conf"
    hba.write_text("".join(x for x in hba.read_text().splitlines(True) if ROLE not in x))
    cluster.psql("SELECT pg_reload_conf()")


def test_the_runner_logs_in_with_an_entra_token_and_stores_no_secret(
    pg_cluster, tmp_path: Path, serve_process
):
    state = tmp_path / "entra"
    key_file = state / "sandbox" / "token-signing.key"

    def check(dn: str, password: str) -> bool:
        if dn != f"cn={ROLE},dc=runner" or not key_file.is_file():
            return False
        try:
            tenant = str(decode_unverified(password)["tid"])
            claims = TokenIssuer(key_file, tenant).verify(password)
        except (TokenError, KeyError, ValueError):
            return False
        return claims.audience == AUDIENCE

    database = f"entra_{tmp_path.name[-8:].replace('-', '_')}"
    pg_cluster.psql(f"CREATE ROLE {ROLE} LOGIN" if not _role_exists(pg_cluster) else "SELECT 1")
    pg_cluster.psql(f'CREATE DATABASE "{database}" OWNER {ROLE}')
    url = pg_cluster.url(database, user=ROLE)
    with ldap_checker(check) as (port, seen):
        _hba(pg_cluster, port)
        try:
            srv = serve_process(
                state, "--sandbox", env={"RUNNER_STORE": url, "RUNNER_STORE_AUTH": "azure"}
            )
            with srv.client() as c:
                r = c.post("/py/echo", params={"rg": "entra"}, headers={"Prefer": "respond-async"})
                assert r.status_code == 202, r.text
                assert wait_final(c, r.json()["id"])["state"] == "succeeded"
            assert seen and all(s == f"cn={ROLE},dc=runner ok" for s in seen), seen
            # A password that is not such a token is refused by the same login.
            with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
                _connect(url, "not-a-token")
        finally:
            _unhba(pg_cluster)
    srv.stop()
    # The token (any of its signed part) is nowhere in the state dir or the logs.
    assert srv.proc is not None and srv.proc.stderr is not None
    logged = srv.proc.stderr.read()
    assert "eyJ" not in logged
    assert files_containing(state, b"ossrdbms") == []


def _role_exists(cluster) -> bool:
    return cluster.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'") == "1"


def _connect(url: str, password: str) -> None:
    import asyncio

    async def go() -> None:
        conn = await asyncpg.connect(url, password=password)
        await conn.close()

    asyncio.run(go())


def test_urls_show_no_password():
    from runner.settings.sections import redacted

    shown = redacted("postgresql://u:s3cret@host/db?sslmode=require")
    assert "s3cret" not in shown and urllib.parse.urlsplit(shown).hostname == "host"
