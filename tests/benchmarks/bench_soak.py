"""Chaos soak (docs/reliability.md): the chaos realm (6 mtor-node processes + a rogue worker, each
in its own network namespace) under steady paid load, with the fault schedule repeated, RSS sampled.

    sudo .venv/bin/python tests/benchmarks/bench_soak.py [MINUTES]      # default 30

Same as `MTOR_CHAOS_LONG=1 MTOR_CHAOS_SOAK_S=1800 python -m pytest -s tests/chaos -k soak`.
Prints the faults injected, intents sent/completed/failed, failovers, an RSS table and the RSS
growth per hour; writes soak_rss.csv (and soak_rss.png with matplotlib) to MTOR_CHAOS_OUT
(default test-artifacts/chaos).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    env = {**os.environ, "MTOR_CHAOS_LONG": "1", "MTOR_CHAOS_SOAK_S": str(int(minutes * 60))}
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:warnings",
           "tests/chaos/test_chaos.py::test_12_soak"]
    sys.exit(subprocess.run(cmd, cwd=ROOT, env=env, timeout=minutes * 60 + 600).returncode)
