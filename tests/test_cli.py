"""The CLI end to end: real `mtor-node` processes, as a shell user runs them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ECHO_MODELS, free_port, write_config

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def cli(*args, data_dir=None, timeout=60, check=False, **kw):
    cmd = [sys.executable, "-m", "mtor_node", *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=kw.pop("env", ENV), **kw)
    if check:
        assert r.returncode == 0, r.stderr
    return r


class RunningNode:
    def __init__(self, data_dir: Path, *extra, env=ENV):
        self.data_dir = data_dir
        self.log = open(data_dir.parent / f"{data_dir.name}.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "mtor_node", "start", "--data-dir", str(data_dir), *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode}: {self.output()}")
            if cli("status", "--json", data_dir=self.data_dir, timeout=10).returncode == 0:
                return
            time.sleep(0.1)  # polling a condition, bounded by the deadline
        raise AssertionError(f"node not ready in {timeout} s: {self.output()}")

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        return self.proc.returncode


@pytest.fixture
def echo_node(tmp_path):
    d = tmp_path / "node"
    port = free_port()
    write_config(d, ECHO_MODELS, http={"port": port}, p2p={"port": 0, "host": "127.0.0.1"})
    node = RunningNode(d)
    node.wait_ready()
    yield node
    node.stop()


def test_help_lists_every_command():
    r = cli("--help", check=True)
    for command in ("init", "start", "status", "chat", "version"):
        assert command in r.stdout
    for command in ("init", "start", "status", "chat"):
        assert "--data-dir" in cli(command, "--help", check=True).stdout
    assert "mtor-node" in cli("version", check=True).stdout


def test_init_creates_config_identity_with_safe_modes(tmp_path):
    d = tmp_path / "data"
    r = cli("init", data_dir=d, check=True)
    assert "peer id:" in r.stdout and "12D3KooW" in r.stdout and "solana address:" in r.stdout
    assert (d / "identity.key").stat().st_mode & 0o777 == 0o600
    assert "# libp2p TCP port" in (d / "mtor.toml").read_text()


def test_status_and_chat_against_a_running_node(echo_node):
    st = json.loads(cli("status", "--json", data_dir=echo_node.data_dir, check=True).stdout)
    assert st["peer_id"].startswith("12D3KooW") and st["roles"] == ["broker", "worker"]
    assert st["models"][0]["name"] == "echo-chat"
    r = cli("chat", "echo me back", data_dir=echo_node.data_dir, check=True)
    assert r.stdout.strip() == "echo me back"
    r = cli("chat", "--json", "as json please", data_dir=echo_node.data_dir, check=True)
    answer = json.loads(r.stdout)
    assert answer["text"] == "as json please" and answer["peer"] == st["peer_id"] and answer["elapsed_s"] > 0
    r = cli("chat", "x", "--model", "nope", data_dir=echo_node.data_dir)
    assert r.returncode == 4 and "no worker serves chat with model nope" in r.stderr


def test_second_start_on_the_same_data_dir_is_refused(echo_node):
    r = subprocess.run([sys.executable, "-m", "mtor_node", "start", "--data-dir", str(echo_node.data_dir), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60, env=ENV)
    assert r.returncode == 1 and "already running" in r.stderr
    # the first node is unharmed
    assert cli("chat", "still here", data_dir=echo_node.data_dir, check=True).stdout.strip() == "still here"


def test_sigterm_stops_cleanly_within_5_s(echo_node):
    t0 = time.monotonic()
    assert echo_node.stop(timeout=5) == 0
    assert time.monotonic() - t0 < 5
    assert not (echo_node.data_dir / "node.json").exists()
    import sqlite3
    assert sqlite3.connect(echo_node.data_dir / "mtor.db").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_no_node_running_says_how_to_start_one(tmp_path):
    port = free_port()
    r = cli("status", data_dir=tmp_path, env={**ENV, "MTOR_PORT": str(port)})
    assert r.returncode == 3
    assert f"no node is running at http://127.0.0.1:{port}; start one with `mtor-node start`" in r.stderr


def test_invalid_config_value_refuses_to_start(tmp_path):
    d = tmp_path / "bad"
    write_config(d, ECHO_MODELS, queue={"max_size": -5})
    r = cli("start", data_dir=d, timeout=60)
    assert r.returncode == 1 and "queue.max_size" in r.stderr and "-5" in r.stderr and "whole number" in r.stderr


def test_identity_readable_by_others_refuses_to_start(tmp_path):
    d = tmp_path / "d"
    cli("init", data_dir=d, check=True)
    os.chmod(d / "identity.key", 0o640)
    r = cli("start", data_dir=d, timeout=60)
    assert r.returncode == 1 and "chmod 600" in r.stderr


def test_mtor_data_dir_and_port_from_the_environment(tmp_path):
    d = tmp_path / "envnode"
    port = free_port()
    write_config(d, ECHO_MODELS, p2p={"enabled": False})
    env = {**ENV, "MTOR_DATA_DIR": str(d), "MTOR_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "mtor_node", "start"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while cli("status", env=env, timeout=10).returncode != 0:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        st = json.loads(cli("status", "--json", env=env, check=True).stdout)
        assert st["http"] == f"http://127.0.0.1:{port}" and st["data_dir"] == str(d)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@pytest.mark.slow
def test_embedded_smollm2_answers_offline(tmp_path):
    """The Done-when of the daemon issue: the packaged SmolLM2 answers sensibly, served as shipped by llama.cpp."""
    d = tmp_path / "smol"
    cli("init", data_dir=d, check=True)  # the default config: embedded SmolLM2, no internet
    port = free_port()
    node = RunningNode(d, "--port", str(port), "--no-p2p")
    try:
        node.wait_ready()
        r = cli("chat", "What is the capital of France?", data_dir=d, timeout=240)
        assert r.returncode == 0, f"{r.stderr}\n--- node log ---\n{node.output()[-3000:]}"
        assert "paris" in r.stdout.lower()
        st = json.loads(cli("status", "--json", data_dir=d, check=True).stdout)
        assert st["models"][0]["status"] == "ready" and st["models"][0]["engine"].startswith("llama.cpp")
        assert "converting" not in node.output()  # the GGUF is served as shipped
    finally:
        assert node.stop() == 0
    assert not any(p.name.startswith("SmolLM2") for p in (d / "models").iterdir())  # no checkpoint written
