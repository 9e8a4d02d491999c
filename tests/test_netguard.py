"""The dial-out guard itself: a connect off this machine is refused and logged, loopback is not."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import tests.conftest as conftest


def test_guard_refuses_off_machine_connect_and_logs_it(tmp_path, monkeypatch):
    log = tmp_path / "guard.log"
    monkeypatch.setattr(conftest._guard, "_LOG", str(log))
    with socket.socket() as s, pytest.raises(OSError) as err:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
    assert err.value.errno == errno.ENETUNREACH
    assert "192.0.2.1" in log.read_text()


def test_guard_allows_loopback():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname(), timeout=5):
            pass


def test_child_processes_inherit_the_guard(tmp_path):
    log = tmp_path / "child.log"
    env = {**os.environ, "MTOR_NETGUARD_LOG": str(log)}
    code = "import socket; s=socket.socket(); s.settimeout(2)\ntry: s.connect(('192.0.2.1', 9))\nexcept OSError as e: print(e.errno)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == str(errno.ENETUNREACH), out.stderr
    assert "192.0.2.1" in log.read_text()
