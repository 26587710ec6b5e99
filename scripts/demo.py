"""The quick start's first command (`make demo`): create a VM through the runner, live.

Starts `runner serve --sandbox` on loopback: TLS with a self-signed certificate generated
into the demo's state dir, and the emulated Azure in the same process (managed identity
and ARM over HTTPS, with Azure-like provisioning times). Then POSTs `vm/create` with curl
exactly as a user would, streams the deployment to this terminal, prints the curl line to
do it again, and stops the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".runner-demo"
JOB = "vm/create?vmname=demo-vm&rg=demo&pw=Demo-Passw0rd-2026"


def main() -> int:
    # The server's own lifecycle lines would interleave with the job's output here.
    env = {
        **os.environ,
        "RUNNER_LOG_FORMAT": "text",
        "RUNNER_LOG_LEVEL": "warning",
        "RUNNER_SANDBOX_LATENCY": "0.5",
    }
    cmd = [
        sys.executable, "-m", "runner", "serve",
        "--sandbox", "--port", "0", "--state-dir", str(STATE),
    ]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        if not first.startswith("runner listening on "):
            print("the server did not start; see the messages above", file=sys.stderr)
            return 1
        url = first.split()[-1]
        cacert = STATE / "tls" / "cert.pem"
        with httpx.Client(verify=str(cacert), timeout=10) as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if client.get(f"{url}/_ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    print("the server never became ready", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        print(f"runner is serving on {url} (TLS, certificate {cacert}),")
        print("deploying to the sandbox (emulated Azure) as its managed identity\n")
        again = f"curl --cacert {cacert} -X POST '{url}/{JOB}'"
        print(f"$ {again}", flush=True)
        if shutil.which("curl"):
            code = subprocess.call(
                [
                    "curl",
                    "-sS",
                    "--no-buffer",
                    "--cacert",
                    str(cacert),
                    "-X",
                    "POST",
                    f"{url}/{JOB}",
                ]
            )
        else:  # the same request without curl
            code = 0
            with (
                httpx.Client(verify=str(cacert), timeout=60) as client,
                client.stream("POST", f"{url}/{JOB}") as r,
            ):
                for line in r.iter_lines():
                    print(line, flush=True)
        print(
            "\nTo do it again: `.venv/bin/runner serve --sandbox --state-dir "
            f"{STATE.relative_to(ROOT)}` in one terminal, then\n"
            f"  {again.replace(url, 'https://127.0.0.1:8443')}\n"
            "Live events: add -H 'Accept: text/event-stream'; "
            "fire and forget: -H 'Prefer: respond-async'; "
            "on Azure: the same URL, without --sandbox."
        )
        return code
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
