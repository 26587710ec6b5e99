"""Secret sources: env:, file: and keyvault: references, and Key Vault values kept fresh.

Key Vault here is the sandbox's, read by the runner's Azure extension (the real
azure-keyvault-secrets client over HTTPS on loopback).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from runner.azure import AzureExtension
from runner.errors import ConfigError
from runner.sandbox import IDENTITY_ENV_VARS, ImdsMode, Sandbox
from runner.secrets import SecretSources, SecretUnavailable, check_source, parse_reference
from runner.settings import AzureSettings
from runner.webhooks import check_secret

T = TypeVar("T")
VALUE = "kv-value-one-8Jd2"
ROTATED = "kv-value-two-Q9zz"


class Seen:
    """A SecretObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, bool]] = []
        self.stale: list[int] = []

    def secret_read(self, vault: str, ok: bool) -> None:
        self.reads.append((vault, ok))

    def secrets_stale(self, count: int) -> None:
        self.stale.append(count)


class Rig:
    """SecretSources reading the sandbox's Key Vault as its system identity."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.made: list[tuple[SecretSources, AzureExtension]] = []

    def __call__(self, refresh: float = 300.0, observer: Seen | None = None) -> SecretSources:
        sb = self.sandbox
        settings = AzureSettings(
            arm_endpoint=sb.arm_url,
            arm_ca=sb.ca_path,
            imds_endpoint=sb.identity_url,
            keyvault_connect=sb.vault_address,
            keyvault_retry_total=0,
        )
        azure = AzureExtension(settings)
        src = SecretSources({"HOOK": "from-env"}, vault=azure, refresh=refresh, observer=observer)
        self.made.append((src, azure))
        return src

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main`` in a loop of its own, closing what it opened in that same loop."""

        async def whole() -> T:
            try:
                return await main()
            finally:
                for src, azure in self.made:
                    await src.close()
                    await azure.close()

        return asyncio.run(whole())


@pytest.fixture
def sources(sandbox: Sandbox, monkeypatch) -> Rig:
    """Factory: SecretSources reading the sandbox's Key Vault; ``sources.run(main)``."""
    for name in IDENTITY_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in sandbox.env("imds").items():
        monkeypatch.setenv(name, value)
    return Rig(sandbox)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("keyvault:http://v.vault.azure.net/secrets/a", "has the form"),
        ("keyvault:https://v.vault.azure.net/keys/a", "has the form"),
        ("keyvault:https://v.vault.azure.net/secrets/a/b/c", "has the form"),
        ("keyvault:https://v.vault.azure.net/secrets/a?x=1", "has the form"),
        ("keyvault:https://user@v.vault.azure.net/secrets/a", "has the form"),
        ("keyvault:https://v.vault.azure.net/secrets/a_b", "not a Key Vault secret name"),
        ("keyvault:https://v.vault.azure.net/secrets/a/v1", "32 hexadecimal digits"),
    ],
)
def test_malformed_references_say_the_form(spec, says):
    """A reference that is not a Key Vault secret identifier is refused, saying why."""
    with pytest.raises(ConfigError, match=says):
        parse_reference(spec)


def test_a_reference_names_vault_secret_and_version():
    """The parts of a reference, a pinned version in lower case."""
    ref = parse_reference("keyvault:https://Ops.vault.azure.net/secrets/Hook/" + "A" * 32)
    assert (ref.vault, ref.host, ref.name, ref.version) == ("ops", "ops.vault.azure.net",
                                                           "Hook", "a" * 32)  # fmt: skip
    assert ref.source == "keyvault:https://ops.vault.azure.net/secrets/Hook/" + "a" * 32


def test_local_sources_are_read_when_watched(tmp_path):
    """env: and file: are read at once; a literal is refused without being echoed."""
    (tmp_path / "hook").write_text("from-file\n")
    src = SecretSources({"HOOK": "from-env"})
    assert src.watch("env:HOOK").current.reveal() == b"from-env"
    assert src.watch(f"file:{tmp_path / 'hook'}").current.reveal() == b"from-file"
    with pytest.raises(ConfigError, match="not as a literal value") as refused:
        src.watch("hunter2-literal")
    assert "hunter2" not in str(refused.value)


def test_key_vault_needs_azure_and_a_vault_of_its_cloud(sources):
    """Without an Azure extension a reference is refused; so is a host outside
    *.vault.azure.net (keyvault_dns_suffix)."""
    with pytest.raises(ConfigError, match="need the runner's Azure identity"):
        SecretSources({}).watch("keyvault:https://v.vault.azure.net/secrets/a")
    with pytest.raises(ConfigError, match="not a Key Vault of this cloud"):
        sources().watch("keyvault:https://v.example.com/secrets/a")


def test_references_are_read_at_start_and_refreshed_in_the_background(sandbox, sources, caplog):
    """Start reads the value; a new version is in use after the refresh time, logged by
    version only."""
    sandbox.set_secret("hook", VALUE)
    seen = Seen()
    src = sources(refresh=0.2, observer=seen)
    hook = src.watch(sandbox.secret_reference("hook"))
    with pytest.raises(SecretUnavailable, match="not been read yet"):
        _ = hook.current

    async def main() -> tuple[bytes, bytes]:
        await src.start()
        first = hook.current.reveal()
        version = sandbox.set_secret("hook", ROTATED)
        deadline = time.monotonic() + 10
        while hook.current.reveal() == first:
            assert time.monotonic() < deadline, "the rotation was never picked up"
            await asyncio.sleep(0.05)
        assert version in caplog.text
        return first, hook.current.reveal()

    with caplog.at_level(logging.INFO, logger="runner.secrets"):
        assert sources.run(main) == (VALUE.encode(), ROTATED.encode())
    assert ("runner-sandbox", True) in seen.reads
    assert VALUE not in caplog.text and ROTATED not in caplog.text


def test_a_failing_refresh_keeps_the_last_value_and_says_so_once(sandbox, sources, caplog):
    """Key Vault unreachable after start: the value read stays in use, one warning, reads
    counted as failed and the reference as stale; back up, it is read again."""
    sandbox.set_secret("hook", VALUE)
    seen = Seen()
    src = sources(refresh=0.1, observer=seen)
    hook = src.watch(sandbox.secret_reference("hook"))

    async def main() -> None:
        await src.start()
        await asyncio.to_thread(sandbox.run_sync, sandbox.set_vault_mode(ImdsMode.REFUSE))
        await asyncio.sleep(0.8)
        assert hook.current.reveal() == VALUE.encode()
        await asyncio.to_thread(sandbox.run_sync, sandbox.set_vault_mode(ImdsMode.UP))
        sandbox.set_secret("hook", ROTATED)
        deadline = time.monotonic() + 10
        while hook.current.reveal() != ROTATED.encode():
            assert time.monotonic() < deadline, "never read again after the outage"
            await asyncio.sleep(0.05)

    with caplog.at_level(logging.INFO, logger="runner.secrets"):
        sources.run(main)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot reach Key Vault at runner-sandbox.vault.azure.net" in warnings[0].getMessage()
    assert "stays in use" in warnings[0].getMessage()
    assert "read again after failures" in caplog.text
    assert ("runner-sandbox", False) in seen.reads
    assert 1 in seen.stale and seen.stale[-1] == 0


def test_a_rotated_value_the_check_refuses_is_not_taken(sandbox, sources, caplog):
    """A Standard Webhooks key rotated to something that is not base64: the old key stays."""
    good = "whsec_c3RhbmRhcmQtd2ViaG9va3MtdGVzdC1rZXktMzJieXQ="
    sandbox.set_secret("std", good)
    src = sources(refresh=0.1)
    key = src.watch(sandbox.secret_reference("std"), check=lambda s: check_secret("standard", s))

    async def main() -> None:
        await src.start()
        sandbox.set_secret("std", "not base64 !!")
        await asyncio.sleep(0.6)

    sources.run(main)
    assert key.current.reveal() == good.encode()
    assert "stays in use" in caplog.text
    assert "not base64" not in caplog.text


def test_start_names_every_reference_it_cannot_read(sandbox, sources):
    """A missing secret and a denied one: start fails naming both, and what to do."""
    sandbox.set_secret("denied", VALUE)
    sandbox.revoke(sandbox.system_identity.principal_id, "Key Vault Secrets User")
    sandbox.grant(sandbox.system_identity.principal_id, "Key Vault Secrets User",
                  sandbox.vault.scope("missing"))  # fmt: skip
    src = sources()
    src.watch(sandbox.secret_reference("missing"))
    src.watch(sandbox.secret_reference("denied"))
    with pytest.raises(SecretUnavailable) as failed:
        sources.run(src.start)
    message = str(failed.value)
    assert "has no secret missing: create it, or correct the reference" in message
    assert '"Key Vault Secrets User"' in message
    assert f"--scope {sandbox.vault.scope()}" in message
    assert VALUE not in message


def test_a_use_after_start_reads_the_reference_then_keeps_it(sandbox, sources):
    """read() (a job's secret default) reads a reference at its first use; a failure says
    why in words."""
    sandbox.set_secret("pw", VALUE)
    src = sources()

    async def main() -> None:
        await src.start()
        assert (await src.read(sandbox.secret_reference("pw"))).reveal() == VALUE.encode()
        with pytest.raises(SecretUnavailable, match="has no secret nope"):
            await src.read(sandbox.secret_reference("nope"))

    sources.run(main)


@pytest.mark.parametrize(
    "spec",
    ["env:HOOK", "file:/run/secrets/hook", "keyvault:https://v.vault.azure.net/secrets/a"],
)
def test_check_source_takes_the_three_forms(spec):
    """Settings can check a source's form before anything is read."""
    check_source(spec)


def test_check_source_refuses_a_literal_without_echoing_it():
    """A pasted secret is refused and not repeated; a bad reference says the form."""
    with pytest.raises(ConfigError, match="not as a literal value") as refused:
        check_source("s3cr3t-pasted")
    assert "s3cr3t" not in str(refused.value)
    with pytest.raises(ConfigError, match="has the form"):
        check_source("keyvault:v/secrets/a")
