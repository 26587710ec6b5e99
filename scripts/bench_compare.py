"""Compare the benchmark of this checkout against another tree, in one run, rounds alternated.

    .venv/bin/python scripts/bench_compare.py --base ../base [--rounds 3] [-- BENCH ARGS…]

Machines here are shared and noisy: figures of two trees measured at different times do
not compare, ratios measured side by side do. Each round runs ``scripts/bench.py --json``
of the base tree, then of this one (each with its own ``runner`` package first on
``PYTHONPATH``, the same Python), and the table gives the median per tree and head/base.
A base tree is a ``git worktree add ../base <commit>`` of the commit to compare against.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def bench(tree: Path, extra: list[str]) -> dict[str, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, str(tree / "scripts" / "bench.py"), "--json", *extra],
        capture_output=True, text=True, cwd=tree, env=env, timeout=3600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bench failed in {tree}:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout)["figures"]
    return {f"{f['part']}: {f['what']}": f for f in figures}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="the tree to compare against")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("bench", nargs="*", help="arguments for bench.py (after --)")
    args = p.parse_args()
    runs: dict[str, list[dict[str, dict[str, object]]]] = {"base": [], "head": []}
    for i in range(args.rounds):
        for name, tree in (("base", args.base.resolve()), ("head", ROOT)):
            print(f"round {i + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            runs[name].append(bench(tree, args.bench))
    keys = [k for k in runs["head"][0] if k in runs["base"][0]]
    print(f"{'figure':58} {'base':>12} {'head':>12} {'head/base':>9}  unit")
    for key in keys:
        med = {n: statistics.median(float(r[key]["value"]) for r in runs[n]) for n in runs}  # type: ignore[arg-type]
        unit = runs["head"][0][key]["unit"]
        ratio = med["head"] / med["base"] if med["base"] else float("nan")
        print(f"{key[:58]:58} {med['base']:12.2f} {med['head']:12.2f} {ratio:9.2f}  {unit}")
    print(f"medians of {args.rounds} alternated rounds; command: {' '.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
