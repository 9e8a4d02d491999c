"""Events and intents as JSON: bytes travel as base64 under a `_b64` key."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from mtor_node.intents import IntentError

BINARY_INPUTS = ("image", "audio")


def jsonable(event: dict) -> dict:
    out: dict[str, Any] = {}
    for k, v in event.items():
        if isinstance(v, (bytes, bytearray)):
            out[k + "_b64"] = base64.b64encode(v).decode()
        else:
            out[k] = v
    return out


def intent_from_json(body: Any) -> dict:
    """Turn `image_b64`/`audio_b64` fields into bytes; everything else is checked by Intent.from_dict."""
    if not isinstance(body, dict):
        raise IntentError("bad_request", "the body must be a JSON object")
    d = dict(body)
    for name in BINARY_INPUTS:
        raw = d.pop(name + "_b64", None)
        if raw is not None:
            if not isinstance(raw, str):
                raise IntentError("bad_input", f"{name}_b64 must be a base64 string")
            try:
                d[name] = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise IntentError("bad_input", f"{name}_b64 is not valid base64") from None
        elif name in d:
            raise IntentError("bad_input", f"send {name} as base64 in {name}_b64")
    return d
