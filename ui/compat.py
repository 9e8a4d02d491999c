"""What the three client-compatible APIs (OpenAI, Ollama, Anthropic) share: one way to turn a
client's request into intents and the result back into usage counts and finish reasons.

Sampling defaults come from the model, not from the client library: a client that sends no
temperature gets the model's own (its `[models.NAME]` options, or what its backend reports),
and where neither says, greedy decoding — what `mtor-node chat` does. OpenAI's documented
default of 1.0 turns a 135M model's "Paris" into noise.
"""

from __future__ import annotations

from mtor_node.service import NodeService

from .intake import submit, ui_state

DEFAULT_MODEL_NAMES = ("", "default", "auto")
SAMPLING_KEYS = ("temperature", "top_p", "max_tokens")
NODE_DEFAULTS = {"temperature": 0.0}  # greedy, like the CLI; max_tokens and top_p: the intent's defaults
MAX_CHOICES = 4  # n > 1 runs n intents: bounded so one request cannot fill the queue


def local_state(svc: NodeService, kind: str, model: str | None):
    """The local model state that would serve (kind, model), or None (remote or unknown)."""
    return svc.local_model_state(kind, model)


def sampling_defaults(svc: NodeService, kind: str, model: str | None) -> dict:
    """The model's own sampling defaults for the keys a client left out."""
    out = dict(NODE_DEFAULTS)
    state = local_state(svc, kind, model)
    if state is not None:
        backend = state.backend
        reported = getattr(backend, "sampling_defaults", None) if backend is not None else None
        if callable(reported):
            try:
                out.update({k: v for k, v in (reported() or {}).items() if k in SAMPLING_KEYS})
            except Exception:  # noqa: BLE001 - a backend's optional report must not fail a request
                pass
        options = state.spec.options
        nested = options.get("sampling") if isinstance(options.get("sampling"), dict) else {}
        out.update({k: v for k, v in {**nested, **options}.items() if k in SAMPLING_KEYS})
    return out


def engine_sampling(svc: NodeService, kind: str, model: str | None) -> dict:
    """The engine's own sampling fields (name -> (lo, hi, integer)) when the local model that would
    serve (kind, model) takes them — llama.cpp: top_k, min_p, repeat_penalty, penalties — else {}:
    then a client's value for one of them is refused, not silently dropped."""
    state = local_state(svc, kind, model)
    if state is None or state.spec.backend != "llamacpp-chat" or getattr(state.backend, "fallback", None):
        return {}
    from mtor_node.backends.chat_llamacpp import EXTRA_PARAMS

    return dict(EXTRA_PARAMS)


def with_defaults(svc: NodeService, kind: str, model: str | None, params: dict) -> dict:
    """params with the model's defaults under the client's explicit values (None = not sent)."""
    given = {k: v for k, v in params.items() if v is not None}
    return {**sampling_defaults(svc, kind, model), **given}


def usage_of(final: dict) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of a result event: the backend's counts where it gives them."""
    usage = final.get("usage") if isinstance(final.get("usage"), dict) else {}
    prompt = usage.get("prompt_tokens", final.get("prompt_tokens"))
    completion = usage.get("completion_tokens", final.get("units"))
    as_int = lambda v: v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0  # noqa: E731
    return as_int(prompt), as_int(completion)


def finish_of(final: dict, max_tokens) -> str:
    """'stop' or 'length': the backend's answer, else length when it produced max_tokens."""
    reason = final.get("finish_reason")
    if reason in ("stop", "length"):
        return reason
    units = final.get("units")
    return "length" if isinstance(units, int) and isinstance(max_tokens, int) and units >= max_tokens else "stop"


def submit_all(intents: list[dict]) -> list:
    """Submit several intents; if one is refused, cancel those already queued and re-raise."""
    state, tickets = ui_state(), []
    try:
        for d in intents:
            tickets.append(submit(state, d))
    except Exception:
        for t in tickets:
            state.service.broker.cancel(t.intent.id, "a sibling request was refused")
        raise
    return tickets


def model_name(raw, strip_tag: bool = False) -> str | None:
    """A client's model field as a node model name; None = the kind's default."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise TypeError("model must be a string")
    if strip_tag and raw.endswith(":latest"):
        raw = raw[: -len(":latest")]  # Ollama clients add the default tag
    return None if raw.lower() in DEFAULT_MODEL_NAMES else raw
