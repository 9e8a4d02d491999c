"""Real `mtor-node start` processes inside the lab's namespaces (echo backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ECHO_MODELS, write_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
HTTP_PORT = 9000  # every namespace has its own loopback: the same ports everywhere
P2P_PORT = 4001


def wait_until(predicate, timeout: float, what: str, interval: float = 0.3):
    """Poll a condition (bounded by the deadline); returns its truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)  # polling a condition, bounded by the deadline
    raise AssertionError(f"not within {timeout} s: {what} (last: {last!r})")


class NsNode:
    def __init__(self, ns: str, data_dir: Path, *extra: str, models=None, listen: str = "0.0.0.0", **sections):
        self.ns, self.data_dir = ns, data_dir
        sections.setdefault("http", {})["port"] = HTTP_PORT
        p2p = sections.setdefault("p2p", {})
        p2p.setdefault("port", P2P_PORT)
        p2p.setdefault("host", listen)
        p2p.setdefault("rendezvous", False)  # never the public bootstrap peers in tests
        write_config(data_dir, ECHO_MODELS if models is None else models, **sections)
        self.log = open(data_dir.parent / f"{data_dir.name}.log", "w+")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "mtor_node", "start", "--data-dir", str(data_dir), *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=ENV, cwd=str(ROOT))
        self.log.close()  # the child has its own descriptor
        self.peer_id = None

    def ns_run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, *args], capture_output=True, text=True,
                              timeout=timeout, env=ENV, cwd=str(ROOT))

    def status(self) -> dict | None:
        r = self.ns_run("curl", "-s", "-m", "3", f"http://127.0.0.1:{HTTP_PORT}/api/v1/status", timeout=10)
        if r.returncode != 0 or not r.stdout.strip():
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def wait_ready(self, timeout: float = 60) -> dict:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode}: {self.output()[-3000:]}")
            return self.status()

        st = wait_until(ready, timeout, f"{self.data_dir.name} ready")
        self.peer_id = st["peer_id"]
        return st

    def reach(self) -> dict:
        return (self.status() or {}).get("reachability") or {}

    def peers(self) -> dict:
        return {p["peer_id"]: p for p in (self.status() or {}).get("peers", [])}

    def chat(self, text: str, *extra: str, timeout: float = 60) -> dict:
        r = self.ns_run(sys.executable, "-m", "mtor_node", "chat", "--json", *extra, text, "--data-dir", str(self.data_dir),
                        timeout=timeout)
        if r.returncode != 0:  # say what the broker thought of its peers at that moment
            view = {p[:12]: {k: v.get(k) for k in ("health", "fresh", "blocked", "banned_for_s", "last_error", "models")}
                    for p, v in self.peers().items()}
            raise AssertionError(f"chat failed: {r.stdout} {r.stderr}; peers: {view}")
        return json.loads(r.stdout)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
