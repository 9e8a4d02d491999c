import os

import pytest

from mtor_node import config as config_mod
from mtor_node import identity as identity_mod


def test_default_config_has_a_comment_on_every_key(tmp_path):
    path = tmp_path / "mtor.toml"
    config_mod.write_default(path)
    lines = path.read_text().splitlines()
    for key in config_mod.KEYS:
        i = next(n for n, line in enumerate(lines) if line.startswith(f"{key.name} = "))
        assert lines[i - 1].startswith("# "), key.path
    cfg = config_mod.load(path)
    assert cfg.warnings == []
    assert cfg["http.port"] == 9000
    assert cfg.default_model("chat") == "smollm2-135m"


def test_unknown_key_warns_and_missing_key_is_reported(tmp_path):
    path = tmp_path / "mtor.toml"
    path.write_text("[http]\nport = 9100\ncolour = 'blue'\n")
    cfg = config_mod.load(path)
    assert cfg["http.port"] == 9100
    assert any("http.colour" in w for w in cfg.warnings)
    assert any("missing keys take their defaults" in w and "queue.max_size" in w for w in cfg.warnings)


@pytest.mark.parametrize("text, key, allowed", [
    ("[http]\nport = 70000\n", "http.port", "1 to 65535"),
    ("[node]\nroles = ['broker', 'miner']\n", "node.roles", "'worker'"),
    ("[queue]\ntimeout_s = 'soon'\n", "queue.timeout_s", "a number"),
    ("[models.x]\nkind = 'dance'\nbackend = 'echo'\n", "models.x.kind", "'chat'"),
])
def test_invalid_value_names_key_value_and_allowed(tmp_path, text, key, allowed):
    path = tmp_path / "mtor.toml"
    path.write_text(text)
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.load(path)
    assert key in str(e.value) and allowed in str(e.value)


def test_not_toml(tmp_path):
    path = tmp_path / "mtor.toml"
    path.write_text("[http\n")
    with pytest.raises(config_mod.ConfigError, match="not valid TOML"):
        config_mod.load(path)


def test_identity_file_is_0600_and_ids_match_libp2p_and_solana(tmp_path):
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID
    from solders.keypair import Keypair

    path = tmp_path / "identity.key"
    ident, created = identity_mod.load_or_create(path)
    assert created and os.stat(path).st_mode & 0o777 == 0o600
    assert identity_mod.load(path) == ident
    assert ident.peer_id == ID.from_pubkey(create_new_key_pair(ident.seed).public_key).to_base58()
    assert ident.solana_address == str(Keypair.from_seed(ident.seed).pubkey())


def test_identity_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "identity.key"
    identity_mod.create(path)
    os.chmod(path, 0o644)
    with pytest.raises(identity_mod.IdentityError, match="readable by other users.*chmod 600"):
        identity_mod.load(path)


def test_corrupt_identity_is_refused(tmp_path):
    path = tmp_path / "identity.key"
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(identity_mod.IdentityError, match="corrupt"):
        identity_mod.load(path)
