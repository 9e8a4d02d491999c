"""What every OpenAI-compatible route under /v1 shares: the blueprint, OpenAI's error shape, and
reading the model, user and body of a request (ui/openai_api.py, openai_audio.py, openai_embed.py).
"""

from __future__ import annotations

from quart import Blueprint, jsonify

from mtor_node.intents import IntentError

from .intake import http_status, read_object, submit, ui_state

openai_bp = Blueprint("openai", __name__, url_prefix="/v1")

DEFAULT_MODEL_NAMES = ("", "default", "auto")


class OpenAIError(Exception):
    def __init__(self, message: str, code: str = "invalid_request", status: int = 400, param: str | None = None):
        super().__init__(message)
        self.message, self.code, self.status, self.param = message, code, status, param

    def response(self):
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return jsonify({"error": {"message": self.message, "type": kind, "code": self.code, "param": self.param}}), self.status


@openai_bp.errorhandler(OpenAIError)
async def _openai_error(e: OpenAIError):
    return e.response()


def from_intent_error(e: IntentError) -> OpenAIError:
    return OpenAIError(e.message, e.code, http_status(e.code))


def final_error(final: dict) -> OpenAIError:
    status = {"timeout": 504, "cancelled": 409, "banned": 403}.get(final.get("code"), 422)
    return OpenAIError(final.get("message", "the intent failed"), final.get("code", "failed"), status)


async def read_body() -> dict:
    return await read_object(OpenAIError)


def model_of(body: dict) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise OpenAIError("model must be a string", param="model")
    return None if model is None or model.lower() in DEFAULT_MODEL_NAMES else model


def user_of(body: dict) -> str:
    user = body.get("user")
    return user if isinstance(user, str) and 0 < len(user) <= 64 else "openai"


def submit_intent(d: dict):
    try:
        return submit(ui_state(), d)
    except IntentError as e:
        raise from_intent_error(e) from None
