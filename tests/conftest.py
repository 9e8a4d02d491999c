"""Shared test fixtures: tiny real models built on the fly, and real nodes started in-process.

No model hub here: HF_HUB_OFFLINE=1 makes a hub id fail in seconds instead of hanging ~47 s.
"""

from __future__ import annotations

import os
import socket
from contextlib import asynccontextmanager
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tempfile

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent

# The dial-out guard (tests/netguard/sitecustomize.py): this process and every Python process the
# suite starts refuse connects and datagrams to addresses off this machine and log them; the autouse
# fixture below fails the test that caused one. Set before any test module builds its child ENV.
_GUARD_DIR = str(ROOT / "tests" / "netguard")
os.environ["MTOR_NETGUARD_LOG"] = os.environ.get("MTOR_NETGUARD_LOG") or tempfile.mkstemp(prefix="mtor-netguard-")[1]
# The lab subnets of tests/chaos/netns.py and tests/nat/lab.py: only on the suite's own veth links.
if os.path.exists("/proc/self/ns/net"):
    os.environ.setdefault("MTOR_NETGUARD_NETNS", str(os.stat("/proc/self/ns/net").st_ino))
os.environ.setdefault("MTOR_NETGUARD_ALLOW", "10.77.0.0/24,10.88.0.0/24,192.168.0.0/16")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_GUARD_DIR, os.environ.get("PYTHONPATH")) if p)
import importlib.util as _ilu  # noqa: E402

_spec = _ilu.spec_from_file_location("mtor_netguard", Path(_GUARD_DIR) / "sitecustomize.py")
_guard = _ilu.module_from_spec(_spec)
_spec.loader.exec_module(_guard)  # installs the guard in this process (MTOR_NETGUARD_LOG is set)


@pytest.fixture(autouse=True)
def no_dial_out():
    """Fail any test during which a process of the suite tried to reach an address off this machine."""
    log = Path(os.environ["MTOR_NETGUARD_LOG"])
    start = log.stat().st_size if log.exists() else 0
    yield
    if log.exists() and log.stat().st_size > start:
        with log.open() as f:
            f.seek(start)
            pytest.fail("a process of this test tried to reach an address off this machine:\n" + f.read()[:4000])

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_tiny_chat_model(out: Path) -> Path:
    """A random 2-layer Llama with a byte-level BPE tokenizer trained here, and a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["What is the capital of France? Paris is the capital.", "The quick brown fox jumps over the lazy dog.",
              "user assistant system hello world", "A grid of AI computers that anyone can join."] * 20
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=fast.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"))


def write_config(data_dir: Path, models: dict[str, dict], **sections) -> None:
    """Write mtor.toml with the given [section] keys and [models.NAME] tables.

    Tests run free unless they price: every kind a test does not price is 0 (the grid realm's
    default price table applies only with prices={"realm_default": True, ...})."""
    from federation.kinds import KIND_NAMES
    from mtor_node.config import _toml_value

    prices = dict(sections.get("prices") or {})
    if not prices.pop("realm_default", False):
        prices = {**{k: 0 for k in KIND_NAMES}, **prices}
    sections = {**sections, "prices": prices}
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
    for name, fields in models.items():
        lines.append(f"[models.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in fields.items()]
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "mtor.toml").write_text("\n".join(lines) + "\n")


ECHO_MODELS = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True}}


@asynccontextmanager
async def running_node(data_dir: Path, models: dict[str, dict] | None = None, **sections):
    """A real Node (HTTP server, broker, models) running in this trio process until the block ends."""
    from mtor_node import config as config_mod
    from mtor_node.node import Node, prepare_data_dir

    sections.setdefault("http", {})
    sections["http"].setdefault("port", free_port())
    sections.setdefault("p2p", {"enabled": False})  # most tests need no network; realm tests say so
    sections["p2p"].setdefault("port", 0)
    sections["p2p"].setdefault("host", "127.0.0.1")
    write_config(data_dir, ECHO_MODELS if models is None else models, **sections)
    prepare_data_dir(data_dir)
    cfg = config_mod.load(data_dir / "mtor.toml")
    node = Node(data_dir, cfg)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            await nursery.start(node.run)
        try:
            yield node
        finally:
            with trio.fail_after(10):
                await node.stop()
            nursery.cancel_scope.cancel()
