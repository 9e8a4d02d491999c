"""Issue 15's done-when: Ctrl-C at every stage of a first start leaves no temporary files and the
next start works. Each stage is recognised by the line the node prints when it reaches it (no
timing), on a fresh data dir with the embedded chat model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.test_cli import ENV

pytestmark = pytest.mark.slow

# the line that says a stage was reached -> its name
STAGES = {
    "first start: wrote": "config written",
    "sysop token": "identity and sysop token written",
    "llama.cpp engine on": "chat engine starting",
    "ready in": "model ready",
}
READY = "ready in"


def start(data_dir: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mtor_node", "start", "--data-dir", str(data_dir), "--port", str(port),
                             "--no-p2p"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 120) -> list[str]:
    """Lines up to and including the first that holds marker (the process must print it in time)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if marker in line:
            return seen
        assert time.monotonic() < deadline, f"no {marker!r} within {timeout} s: {''.join(seen)[-3000:]}"
    raise AssertionError(f"exited ({proc.wait()}) before {marker!r}: {''.join(seen)[-3000:]}")


def leftovers(data_dir: Path) -> list[str]:
    """Temporary files and folders a stopped node must not leave behind."""
    out = []
    for p in data_dir.rglob("*"):
        n = p.name
        if n.endswith(".tmp") or ".tmp-" in n or n.endswith(".partial") or n == "node.json":
            out.append(str(p.relative_to(data_dir)))
    return out


@pytest.mark.parametrize("marker", list(STAGES), ids=list(STAGES.values()))
def test_ctrl_c_at_each_stage_of_a_first_start(tmp_path, marker):
    data_dir, port = tmp_path / "n", free_port()
    proc = start(data_dir, port)
    try:
        lines = read_until(proc, marker)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = "".join(lines) + (rest or "")
    assert proc.returncode in (0, 130), f"exit {proc.returncode} after Ctrl-C at {STAGES[marker]}: {out[-3000:]}"
    assert "Traceback" not in out and "FATAL" not in out, out[-3000:]
    assert leftovers(data_dir) == [], f"left behind after Ctrl-C at {STAGES[marker]}"

    again = start(data_dir, port)
    try:
        read_until(again, READY)
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)
    finally:
        if again.poll() is None:
            again.kill()
            again.wait(10)
    assert again.returncode == 0
    assert leftovers(data_dir) == []
    assert (data_dir / "identity.key").exists() and os.stat(data_dir / "identity.key").st_mode & 0o077 == 0
