"""The quick start's first command works: `make demo` creates a VM and streams it back."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def test_demo_creates_a_vm_over_https_on_the_sandbox(tmp_path):
    """scripts/demo.py serves with --sandbox, creates a VM through curl, shows how again."""
    out = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "created virtual machine demo-vm" in text
    assert re.search(r"public address\s+\d+\.\d+\.\d+\.\d+", text)
    assert re.search(r"^runner: run=\S+ state=succeeded exit=0 ", text, re.M)
    assert "To do it again" in text and "/vm/create?vmname=demo-vm" in text
    # The password was in the URL; the stream never echoes it back.
    assert text.count("Demo-Passw0rd-2026") == 2  # the two curl lines shown to the user
