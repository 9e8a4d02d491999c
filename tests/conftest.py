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

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent

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
    """Write mtor.toml with the given [section] keys and [models.NAME] tables."""
    from mtor_node.config import _toml_value

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
