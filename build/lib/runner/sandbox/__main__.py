"""``python -m runner.sandbox [STATE_DIR]``: run the sandbox until Ctrl-C.

Prints the environment variables for each identity kind and how to build SDK clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path

from .server import KINDS, Sandbox


async def _serve(state_dir: Path) -> None:
    sandbox = Sandbox(state_dir)
    await sandbox.start()
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
    print(
        "\nSDK clients: base_url=ARM, credential_scopes=['https://management.azure.com/.default'],"
        "\n  connection_verify=<CA certificate>, polling_interval=0"
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
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.state_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
