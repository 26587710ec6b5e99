"""What runner.toml's delivery rules cost a delivery: the JSON parsed into the document,
``events`` and ``when`` checked, ``params`` mapped (runner.deliveries, in process).

    .venv/bin/python scripts/bench_deliveries.py [--rounds 200]

Two bodies: a GitHub push of a usual size (one commit, the repository's ~40 URL fields,
about 3 KB) and one just under the default body limit (``max_body_bytes``, 1 MiB: a
push listing as many commits as fit). Prints the median and 95th percentile per delivery,
in milliseconds, for the document alone (what any rule needs) and for the whole rule set.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from runner.deliveries import Payload, ignores, map_params
from runner.policy import policies_from_toml

SHA = "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"
RULES = {
    "verify": "github",
    "secret": "env:GH_HOOK",
    "events": ["push"],
    "when": {"body.ref": "refs/heads/main", "body.deleted": False,
             "starts_with(body.repository.full_name, 'octo-org/')": True},
    "params": {"ref": "body.ref", "repo": "body.repository.full_name",
               "sha": "body.head_commit.id", "author": "body.head_commit.author.email",
               "files": "join(',', body.head_commit.modified)"},
}  # fmt: skip


def push(commits: int) -> dict[str, Any]:
    """A push as GitHub sends it, with ``commits`` commits."""
    commit = {"id": SHA, "tree_id": SHA, "distinct": True, "message": "Update README.md",
              "timestamp": "2026-05-15T15:20:41Z", "url": f"https://github.com/o/r/commit/{SHA}",
              "author": {"name": "Mona", "email": "mona@example.com", "username": "mona"},
              "committer": {"name": "GitHub", "email": "noreply@github.com"},
              "added": [], "removed": [], "modified": ["README.md"]}  # fmt: skip
    repo: dict[str, Any] = {"id": 1, "name": "hello", "full_name": "octo-org/hello",
                            "owner": {"login": "octo-org", "id": 7}}  # fmt: skip
    for name in ("forks", "keys", "collaborators", "teams", "hooks", "issue_events", "events",
                 "assignees", "branches", "tags", "blobs", "git_tags", "git_refs", "trees",
                 "statuses", "languages", "stargazers", "contributors", "subscribers",
                 "subscription", "commits", "git_commits", "comments", "issue_comment",
                 "contents", "compare", "merges", "archive", "downloads", "issues", "pulls",
                 "milestones", "notifications", "labels", "releases", "deployments"):  # fmt: skip
        repo[f"{name}_url"] = f"https://api.github.com/repos/octo-org/hello/{name}{{/id}}"
    return {"ref": "refs/heads/main", "before": SHA, "after": SHA, "created": False,
            "deleted": False, "forced": False, "base_ref": None, "compare": "https://x",
            "commits": [commit] * commits, "head_commit": commit, "repository": repo,
            "pusher": {"name": "mona"}, "sender": {"login": "mona", "id": 2}}  # fmt: skip


def measure(body: bytes, rounds: int) -> tuple[list[float], list[float]]:
    (policy,) = policies_from_toml({"ci/deploy": RULES}, Path("runner.toml"))
    headers = {"x-github-event": "push", "content-type": "application/json"}
    document, whole = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        payload = Payload("push", body, "application/json", headers, {})
        _ = payload.document
        t1 = time.perf_counter()
        assert ignores(policy.events, policy.when, payload) is None
        mapped = map_params(policy.params, payload)
        t2 = time.perf_counter()
        assert mapped.values["sha"] == SHA and not mapped.missing
        document.append((t1 - t0) * 1000)
        whole.append((t2 - t0) * 1000)
    return document, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    usual = json.dumps(push(1)).encode()
    per_commit = len(json.dumps(push(2)).encode()) - len(usual)
    # As many commits as fit under the default body limit (1 MiB).
    limit = json.dumps(push(((1 << 20) - len(usual)) // per_commit)).encode()
    print(f"{'body':>12} {'bytes':>9} {'document p50/p95 ms':>22} {'all rules p50/p95 ms':>22}")
    for name, body in (("usual push", usual), ("1 MiB push", limit)):
        doc, whole = measure(body, args.rounds)
        p95 = statistics.quantiles(doc, n=20)[18], statistics.quantiles(whole, n=20)[18]
        print(f"{name:>12} {len(body):>9} {statistics.median(doc):>10.3f}/{p95[0]:<11.3f}"
              f" {statistics.median(whole):>10.3f}/{p95[1]:<11.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
