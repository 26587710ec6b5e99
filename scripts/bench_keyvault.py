"""Key Vault references against the sandbox: what start-up and a delivery pay (issue 14).

    .venv/bin/python scripts/bench_keyvault.py [--refs 20]

Prints: the time to read N references at start (one challenge, one token, N reads over
one connection pool), the requests and tokens that cost, the time of one refresh round,
and what a delivery pays to get its secrets (``Watched.current`` for a rotation list of
two). Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import timeit
from pathlib import Path

from runner.azure import AzureExtension
from runner.sandbox import IDENTITY_ENV_VARS, Sandbox
from runner.secrets import SecretSources
from runner.settings import AzureSettings


async def measure(sandbox: Sandbox, refs: int) -> None:
    settings = AzureSettings(
        arm_endpoint=sandbox.arm_url,
        arm_ca=sandbox.ca_path,
        imds_endpoint=sandbox.identity_url,
        keyvault_connect=sandbox.vault_address,
    )
    azure = AzureExtension(settings)
    sources = SecretSources({}, vault=azure, refresh=3600)
    watched = [sources.watch(sandbox.secret_reference(f"s{i}")) for i in range(refs)]
    try:
        t0 = time.perf_counter()
        await sources.start()
        started = time.perf_counter() - t0
        calls = sandbox.controls.vault_calls
        print(f"start, {refs} references:       {started * 1000:8.1f} ms")
        print(f"  Key Vault requests:          {sum(calls.values())} "
              f"({calls.get('challenge', 0)} challenge)")  # fmt: skip
        print(f"  tokens issued:               {sum(sandbox.controls.tokens_issued.values())}")
        entries = list(sources._entries.values())
        t0 = time.perf_counter()
        await asyncio.gather(*(sources._read(e) for e in entries))
        again = time.perf_counter() - t0
        print(f"one refresh round:             {again * 1000:8.1f} ms")
        pair = watched[:2]
        per = min(timeit.repeat(lambda: [w.current for w in pair], number=100_000, repeat=5))
        print(f"a delivery's secrets (2):      {per / 100_000 * 1e9:8.0f} ns")
    finally:
        await sources.close()
        await azure.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refs", type=int, default=20, help="references to read")
    args = parser.parse_args()
    for name in IDENTITY_ENV_VARS:
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(Path(tmp))
        for i in range(args.refs):
            sandbox.set_secret(f"s{i}", f"value-{i}")
        with sandbox.in_thread():
            os.environ.update(sandbox.env("imds"))
            asyncio.run(measure(sandbox, args.refs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
