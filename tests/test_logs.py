"""Logs that last: the rotating file in the data dir's logs/, JSON lines, the ring for the sysop's console."""

from __future__ import annotations

import json
import logging

import pytest

from mtor_node import logs
from tests.conftest import ECHO_MODELS, free_port, write_config
from tests.test_cli import RunningNode, cli


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            if h is not logs.RING:
                h.close()
    root.setLevel(level)


def test_rotates_at_size_keeps_count_and_writes_json(tmp_path, restore_logging):
    path = logs.setup(tmp_path, max_bytes=4096, backup_count=2, fmt="json")
    log = logging.getLogger("mtor.test")
    for i in range(400):
        log.info("line %d with some words to fill the file %s", i, "x" * 20)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["mtor-node.log", "mtor-node.log.1", "mtor-node.log.2"]  # two kept, the rest rotated away
    for p in (tmp_path / "logs").iterdir():
        assert p.stat().st_size <= 4096
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[-1]["msg"] == "it failed" and "ValueError: boom" in lines[-1]["exc"] and lines[-1]["level"] == "ERROR"
    assert lines[-2]["msg"].startswith("line 399 ") and lines[-2]["logger"] == "mtor.test"
    # the ring behind the sysop's live console: level filter and search
    recent = logs.RING.recent(level="ERROR", search="FAILED")
    assert recent[-1]["msg"] == "it failed"
    seq = recent[-1]["seq"]
    log.warning("after")
    assert [r["msg"] for r in logs.RING.recent(after=seq)] == ["after"]
    assert logs.RING.recent(search="line 12", limit=5)[-1]["msg"].startswith("line 129 ")
    with pytest.raises(ValueError):
        logs.RING.recent(level="LOUD")
    with pytest.raises(ValueError):
        logs.setup(tmp_path, fmt="xml")


def test_node_process_writes_its_log_file_as_json(tmp_path):
    d = tmp_path / "node"
    write_config(d, ECHO_MODELS, http={"port": free_port()}, p2p={"enabled": False}, logs={"max_bytes": 65536, "backup_count": 3})
    node = RunningNode(d, "--log-format", "json")
    try:
        node.wait_ready()
        assert cli("chat", "hello", data_dir=d, timeout=30).returncode == 0
    finally:
        assert node.stop() == 0
    lines = (d / "logs" / "mtor-node.log").read_text().splitlines()
    assert lines, "nothing was logged to logs/mtor-node.log"
    records = [json.loads(x) for x in lines]  # every line is one JSON object
    assert all({"t", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(r["logger"].startswith("mtor") for r in records)
