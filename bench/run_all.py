"""Run every benchmark; each prints its figures and a ratio against its own baseline."""

from __future__ import annotations

import subprocess
import sys

BENCHES = [
    "bench.bench_ingest",
    "bench.bench_live_ingest",
    "bench.bench_stats",
    "bench.bench_simulate",
    "bench.bench_console",
    "bench.bench_login",
    "bench.bench_jobs",
    "bench.bench_scan",
    "bench.bench_moderation",
    "bench.bench_moderation_ingest",
    "bench.bench_sop",
]

for name in BENCHES:
    print(f"== {name}", flush=True)
    subprocess.run([sys.executable, "-m", name], check=True)
