"""The `mtor-node start` flags come from the config keys (mtor_node/config.py KEYS): each flag's help
and default are its key's, and each flagged key is set by its flag once (docs/operator-guide.md)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from mtor_node import cli
from mtor_node import config as config_mod
from mtor_node.config import Bool, Float, Int, Key, Str, StrList

FLAGGED = [k for k in config_mod.KEYS if k.flag]
# the flags `start` has always had; none may disappear or change its key
EXISTING = {
    "--roles": "node.roles", "--port": "http.port", "--host": "http.host", "--p2p-port": "p2p.port",
    "--p2p-host": "p2p.host", "--realm-secret": "p2p.realm_secret", "--peer": "p2p.peers",
    "--airgap": "p2p.airgap", "--no-p2p": "p2p.enabled", "--listen": "p2p.listen", "--announce": "p2p.announce",
    "--relay": "p2p.relay_service", "--relay-via": "p2p.relays", "--no-relay-client": "p2p.relay_client",
    "--max-peers": "p2p.max_peers", "--max-per-ip": "p2p.max_per_ip", "--no-hole-punch": "p2p.hole_punch",
    "--mdns": "p2p.mdns", "--mdns-interface": "p2p.mdns_interfaces", "--no-rendezvous": "p2p.rendezvous",
    "--rendezvous-bootstrap": "p2p.rendezvous_bootstrap", "--peaking": "prices.peaking",
}
HAND_WRITTEN = {"help", "data_dir", "price", "verbose", "log_format"}  # start options that are no config key


def start_parser() -> argparse.ArgumentParser:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["start"]


def start_args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["start", *argv])


def test_every_existing_flag_is_a_key_flag():
    assert {k.flag.name: k.path for k in FLAGGED} == EXISTING


def test_each_start_option_is_a_key_flag_or_hand_written_once():
    actions = {a.dest: a for a in start_parser()._actions}
    by_dest = {k.flag.dest: k for k in FLAGGED}
    assert len(by_dest) == len(FLAGGED)  # no two keys share a flag
    assert set(actions) == set(by_dest) | HAND_WRITTEN
    for dest, key in by_dest.items():
        action = actions[dest]
        assert action.option_strings == [key.flag.name]
        assert action.help == cli.flag_help(key)
        assert key.comment in action.help and key.path in action.help
        # argparse's default is "not given": the key's default (mtor.toml's value) applies
        assert action.default in (None, False)
        if isinstance(key.check, Str) and key.check.choices:
            assert tuple(action.choices) == key.check.choices


def test_help_text_shows_each_keys_comment_and_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100000")  # one line per option
    blocks: dict[str, str] = {}  # option -> its invocation and help, on one line
    name = ""
    for li in start_parser().format_help().splitlines():
        if li.startswith("  -"):
            name = li.split()[0].rstrip(",")
        if name:
            blocks[name] = blocks.get(name, "") + " " + li.strip()
    for key in FLAGGED:
        line = blocks[key.flag.name]
        assert key.comment in line, key.flag.name
        default = key.default
        if isinstance(default, bool):
            shown = "on" if default else "off"
        elif isinstance(default, list):
            shown = key.flag.sep.join(default) if key.flag.sep else ("none" if not default else f"{len(default)} entries")
        else:
            shown = repr(default) if default == "" else str(default)
        assert f"mtor.toml {key.path}, default {shown}" in line, line


def test_bool_flags_set_the_opposite_of_the_default():
    for key in FLAGGED:
        if isinstance(key.check, Bool):
            assert key.flag.switch is not key.default, key.flag.name


def _sample(key: Key) -> tuple[list[str], Any]:
    """Argv that sets `key` through its flag, and the value it must set (valid, not the default)."""
    check, name = key.check, key.flag.name
    if isinstance(check, Bool):
        return [name], key.flag.switch
    if isinstance(check, Int):
        v = check.lo if check.lo != key.default else check.hi
        return [name, str(v)], v
    if isinstance(check, Float):
        v = check.hi if check.hi != key.default else check.lo
        return [name, str(v)], float(v)
    if isinstance(check, Str):
        v = next(c for c in check.choices if c != key.default) if check.choices else "x-value"
        return [name, v], v
    assert isinstance(check, StrList)
    items = list(check.choices[:1]) if check.choices else ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]
    if key.flag.sep:
        return [name, key.flag.sep.join(items)], items
    return [a for x in items for a in (name, x)], items


@pytest.mark.parametrize("key", FLAGGED, ids=lambda k: k.flag.name)
def test_each_flag_sets_its_key_and_nothing_else(key, tmp_path, monkeypatch):
    monkeypatch.delenv("MTOR_PORT", raising=False)
    argv, value = _sample(key)
    overrides = cli._overrides(start_args(*argv))
    assert overrides == {key.path: value, **dict(key.flag.implies)}
    cfg = config_mod.load(tmp_path / "mtor.toml", overrides)  # passes the key's check
    assert cfg[key.path] == value


def test_no_flags_no_overrides_and_empty_values_keep_the_files(monkeypatch):
    monkeypatch.delenv("MTOR_PORT", raising=False)
    assert cli._overrides(start_args()) == {}
    assert cli._overrides(start_args("--host", "", "--realm-secret", "", "--roles", "")) == {}
    assert cli._overrides(start_args("--roles", "broker, worker,")) == {"node.roles": ["broker", "worker"]}


def test_an_env_flag_reads_its_variable_when_the_flag_is_absent(monkeypatch):
    monkeypatch.setenv("MTOR_PORT", "9123")
    assert cli._overrides(start_args()) == {"http.port": 9123}
    assert cli._overrides(start_args("--port", "9124")) == {"http.port": 9124}
    monkeypatch.setenv("MTOR_PORT", "soon")  # left to the config check, which names the key
    assert cli._overrides(start_args()) == {"http.port": "soon"}


def test_generated_config_file_is_unchanged_by_flags(tmp_path):
    """The commented mtor.toml is written from the same keys; a flag's key is in it with its comment."""
    text = config_mod.default_text()
    for key in FLAGGED:
        assert f"# {key.comment}\n{key.name} = {config_mod._toml_value(key.default)}\n" in text
