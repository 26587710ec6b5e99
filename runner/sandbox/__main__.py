"""``python -m runner.sandbox [STATE_DIR] [--env-file F] [--secret NAME=VALUE…]``: run
the sandbox until Ctrl-C.

Prints the environment variables for each identity kind, how to build SDK clients, and
the exact lines that point azure-cli at it (also written to ``--env-file`` to ``source``).
``--secret`` stores secrets in the sandbox's Key Vault; the references to them are
printed, never their values. The same state directory keeps the same ports and endpoint
secrets across restarts (Key Vault secrets are seeded anew at each start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
from pathlib import Path

from .server import KINDS, Sandbox


async def _serve(state_dir: Path, env_file: Path | None, secrets: dict[str, str]) -> None:
    sandbox = Sandbox(state_dir)
    for name, value in secrets.items():
        sandbox.set_secret(name, value)
    await sandbox.start()
    if env_file is not None:
        await asyncio.to_thread(env_file.write_text, sandbox.az_env_file(), "utf-8")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"ARM (https):      {sandbox.arm_url}")
    print(f"identity (http):  {sandbox.identity_url}")
    print(f"CA certificate:   {sandbox.ca_path}")
    print(f"subscription:     {sandbox.subscription_id}")
    print(f"tenant:           {sandbox.tenant_id}")
    print(f"admin:            {sandbox.arm_url}/_sandbox")
    print(f"Key Vault:        {sandbox.vault_url} (connect to {sandbox.vault_address})")
    for name in secrets:
        print(f"  secret {name}: {sandbox.secret_reference(name)}")
    print("\nto run `runner serve` against it (system-assigned identity), in another shell:")
    for name, value in sandbox.runner_env().items():
        print(f"  export {name}={value}")
    print("\nenvironment per identity kind:")
    for kind in KINDS:
        print(f"  {kind}: {json.dumps(sandbox.env(kind))}")
    print("\nazure-cli (bash; az in any virtualenv):")
    for line in sandbox.az_env_file().splitlines():
        print(f"  {line}")
    if env_file is not None:
        print(f"  (written to {env_file}: `source {env_file}`)")
    print(
        "\nSDK clients: base_url=ARM, credential_scopes=['https://management.azure.com/.default'],"
        "\n  connection_verify=<CA certificate> (Retry-After paces long-running operations)"
        "\n(pass connection_verify to the credential too). Ctrl-C to stop.",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m runner.sandbox", description=__doc__)
    parser.add_argument(
        "state_dir",
        nargs="?",
        type=Path,
        default=Path("state/sandbox"),
        help="where the CA, server certificate and signing key live (default: state/sandbox)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        help="also write the azure-cli environment and cloud registration to this file",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="store a secret in the sandbox's Key Vault (repeatable)",
    )
    args = parser.parse_args(argv)
    secrets: dict[str, str] = {}
    for item in args.secret:
        name, sep, value = item.partition("=")
        if not sep or not name:
            # Never echo the item: it holds the value.
            parser.error("--secret takes NAME=VALUE")
        if not re.fullmatch(r"[0-9a-zA-Z-]{1,127}", name):
            parser.error(f"--secret {name}=…: a Key Vault secret name is 1-127 of 0-9 a-z A-Z -")
        secrets[name] = value
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.state_dir, args.env_file, secrets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
