"""No Unix-only import on the path of `mtor-node start` (issue 19): Windows has no `fcntl`.

The check runs in a fresh interpreter where `import fcntl` fails as it does on Windows
(`sys.modules["fcntl"] = None`), imports every module of the four packages, and takes, refuses
and releases the data-dir lock the way `start` does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import importlib, json, pkgutil, sys, warnings
    from pathlib import Path
    sys.modules["fcntl"] = None  # as on Windows: `import fcntl` raises ImportError
    warnings.simplefilter("ignore")  # filelock says it falls back to a soft lock here
    failed = {}
    count = 0
    for pkg in ("mtor_node", "federation", "ledger", "ui"):
        mod = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
            if info.name.endswith("__main__"):
                continue  # runs the CLI on import
            count += 1
            try:
                importlib.import_module(info.name)
            except Exception as e:
                failed[info.name] = repr(e)[:300]
    from mtor_node.node import DataDirLock, StartError, prepare_data_dir
    from federation.addrs import local_ipv4s, resolve_listen
    data_dir = Path(sys.argv[1])
    prepare_data_dir(data_dir)
    first = DataDirLock(data_dir)
    first.acquire()
    try:
        DataDirLock(data_dir).acquire()
        second = "acquired"
    except StartError as e:
        second = str(e)
    first.release()
    again = DataDirLock(data_dir)
    again.acquire()
    again.release()
    print(json.dumps({"count": count, "failed": failed, "fcntl_loaded": sys.modules.get("fcntl") is not None,
                      "second": second, "ips": local_ipv4s(), "lo": resolve_listen(["127.0.0.1"])}))
""")


def test_every_module_imports_and_the_lock_works_without_fcntl(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], capture_output=True, text=True,
                       timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["count"] > 40, out  # the walk really saw the packages
    assert out["failed"] == {}, out["failed"]
    assert not out["fcntl_loaded"]
    assert "already running" in out["second"] and re.search(r"\(pid \d+\)", out["second"]), out["second"]
    assert "127.0.0.1" in out["ips"] and out["lo"] == ["127.0.0.1"]
