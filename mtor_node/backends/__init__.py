"""Model backends, looked up by the `backend` name of a model registry entry.

Imported lazily so that starting the node does not pay for torch/transformers until a model loads.
"""

from __future__ import annotations

import importlib

from .base import Backend, BackendError, ModelSpec

# backend name -> "module:Class"
BACKENDS = {
    "echo": "mtor_node.backends.echo:EchoBackend",
    "transformers-chat": "mtor_node.backends.chat_transformers:TransformersChat",
    "llamacpp-chat": "mtor_node.backends.chat_llamacpp:LlamaCppChat",
    "faster-whisper": "mtor_node.backends.transcribe_whisper:FasterWhisper",
    "piper": "mtor_node.backends.speak_piper:PiperSpeak",
    "espeak": "mtor_node.backends.speak_espeak:EspeakSpeak",
    "transformers-vits": "mtor_node.backends.speak_vits:VitsSpeak",
    "transformers-vision": "mtor_node.backends.vision_transformers:TransformersVision",
    "diffusers": "mtor_node.backends.imagine_diffusers:DiffusersImagine",
    "transformers-embed": "mtor_node.backends.embed_transformers:TransformersEmbed",
    "ollama": "mtor_node.backends.remote_ollama:OllamaRemote",
    "openai": "mtor_node.backends.remote_openai:OpenAIRemote",
    "a1111": "mtor_node.backends.remote_a1111:A1111Remote",
    "anthropic": "mtor_node.backends.remote_anthropic:AnthropicRemote",
}


def backend_class(name: str) -> type[Backend]:
    try:
        module, cls = BACKENDS[name].split(":")
    except KeyError:
        raise BackendError("unknown_backend", f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return getattr(importlib.import_module(module), cls)


__all__ = ["BACKENDS", "Backend", "BackendError", "ModelSpec", "backend_class"]
