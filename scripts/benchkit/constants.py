"""Where things are, and what the figures are held against."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # scripts/
ROOT = HERE.parent
JOBS = HERE / "bench_jobs"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PARTS = ("rps", "latency", "replay", "sse-memory")
FINAL_STATES = ("succeeded", "failed", "cancelled", "timed_out", "interrupted")
BAD_STATES = "failed,cancelled,timed_out,interrupted"
JOB_NAMES = {"python": "py/noop", "script": "sh/noop"}

# Targets on the reference machine (2 cores shared by client and server).
TARGET_RPS = {("python", 8): 2500.0, ("script", 8): 1270.0}
TARGET_TTFB_P50_MS = 2.0
TARGET_REPLAY_LINES_S = 200_000.0
TARGET_STREAM_KIB = 64.0
