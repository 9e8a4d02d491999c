"""The sysop's model registry over HTTP (every route needs the sysop token):

    POST   /api/v1/models              {"name": "...", "kind": ..., "backend": ..., "source": ..., ...}  add
    DELETE /api/v1/models/NAME                                                                        remove
    POST   /api/v1/models/NAME/load    load now (waits until ready or failed)
    POST   /api/v1/models/NAME/unload  free its memory; it loads again on the next intent

The fields are mtor.toml's [models.NAME] fields, checked the same way. Changes last across restarts
(mtor_node/model_registry.py) and are announced to the realm with the next capability refresh.
"""

from __future__ import annotations

from quart import Blueprint, current_app, jsonify

from mtor_node.intents import IntentError
from mtor_node.model_registry import ModelRegistry, RegistryError

from .api import error, json_body, require_sysop, service

models_api = Blueprint("models_v1", __name__, url_prefix="/api/v1")


@models_api.before_app_serving
async def open_registry():
    """Before the first request: the sysop's saved additions and removals go over mtor.toml's models."""
    current_app.extensions["mtor_service"].open_model_registry()


def _registry() -> ModelRegistry:
    reg = service().model_registry
    if reg is None:
        raise RegistryError("not_worker", "this node runs no models (it is not a worker)", 409)
    return reg


def _fail(e: RegistryError):
    return error(e.code, e.message, e.status)


@models_api.post("/models")
async def add_model():
    denied = require_sysop()
    if denied:
        return denied
    try:
        body = await json_body()
        fields = {k: v for k, v in body.items() if k != "name"}
        return jsonify({"model": _registry().add(body.get("name"), fields)}), 201
    except IntentError as e:
        return error(e.code, e.message)
    except RegistryError as e:
        return _fail(e)


@models_api.delete("/models/<name>")
async def remove_model(name: str):
    denied = require_sysop()
    if denied:
        return denied
    try:
        return jsonify(await _registry().remove(name))
    except RegistryError as e:
        return _fail(e)


@models_api.post("/models/<name>/load")
async def load_model(name: str):
    denied = require_sysop()
    if denied:
        return denied
    try:
        return jsonify({"model": await _registry().load(name)})
    except RegistryError as e:
        return _fail(e)


@models_api.post("/models/<name>/unload")
async def unload_model(name: str):
    denied = require_sysop()
    if denied:
        return denied
    try:
        return jsonify({"model": await _registry().unload(name)})
    except RegistryError as e:
        return _fail(e)
