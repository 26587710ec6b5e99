"""``python -m runner.sandbox [STATE_DIR] [--env-file F]``: run the sandbox until Ctrl-C.

Prints the environment variables for each identity kind, how to build SDK clients, and
the exact lines that point azure-cli at it (also written to ``--env-file`` to ``source``).
The same state directory keeps the same ports and secrets across restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path

from .server import KINDS, Sandbox


async def _serve(state_dir: Path, env_file: Path | None) -> None:
    sandbox = Sandbox(state_dir)
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
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.state_dir, args.env_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
