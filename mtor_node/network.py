"""The node's side of the federation: runs the libp2p layer, announces what the local worker
serves, takes intents from peers into the local queue, and routes local intents to peers.

Event mapping between the broker's events and `/mtor/intent/1` frames (docs/protocol.md):
  chunk{text} / chunk{audio}  <->  chunk{data: str | bytes}
  progress{step, total}       <->  progress{done, total}
  queued{position}            <->  progress{position}
  result{...}                 <->  result{output: {...}, units}
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Awaitable, Callable

import trio

from federation import Federation
from federation.intent_protocol import IntentFailed
from federation.realm import Realm, parse_secret, public_realm

from . import __version__, hardware
from .backends import BackendError
from .intents import Intent, IntentError

log = logging.getLogger("mtor.network")

ANNOUNCE_REFRESH_S = 5.0  # queue depth and model states change: re-offer this often (sent only on change)


def realm_from_config(cfg) -> Realm:
    secret = cfg["p2p.realm_secret"]
    if secret:
        return parse_secret(secret)  # RealmSecretError names what is wrong
    return public_realm() if cfg["p2p.realm"] == "grid" else Realm(cfg["p2p.realm"], None)


class Network:
    def __init__(self, node):
        self.node = node
        cfg = node.config
        self.realm = realm_from_config(cfg)
        self.fed = Federation(
            node.identity.seed,
            self.realm,
            listen_host=cfg["p2p.host"],
            listen_port=cfg["p2p.port"],
            peers=cfg["p2p.peers"],
            bootstrap=cfg["p2p.bootstrap"],
            airgap=cfg["p2p.airgap"],
        )
        self.hardware: dict = {"gpus": [], "cpu": {"cores": 0, "ram": 0}}

    # ---- running ------------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if "worker" in self.node.roles:
            self.fed.set_intent_handler(self.serve_peer_intent)
        self._offer()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.fed.run)
            task_status.started()
            # importing torch for the GPU probe takes seconds: not on the way to "ready"
            self.hardware = await trio.to_thread.run_sync(hardware.probe)
            self._offer()
            while True:
                await trio.sleep(ANNOUNCE_REFRESH_S)
                self._offer()

    def _offer(self) -> None:
        """Tell the realm what this node's worker serves now (announced at once if it changed)."""
        models = self.node.models
        broker = self.node.broker
        caps = {
            **self.hardware,
            "models": models.models_by_kind() if models and "worker" in self.node.roles else {},
            "prices": {},
            "surge": 1.0,
            "queue": len(broker.queue) if broker else 0,
            "capacity": sum(s.spec.concurrency for s in models.states.values()) if models else 0,
            "version": __version__,
        }
        self.fed.set_capabilities(caps)

    # ---- a peer asks this node's worker ---------------------------------------------------------

    async def serve_peer_intent(self, peer_id: str, request: dict, send: Callable[[dict], Awaitable[None]]) -> None:
        inputs = request.get("inputs") or {}
        try:
            intent = Intent.from_dict({
                "id": request["id"][:64], "kind": request["kind"], "model": request["model"],
                "params": request.get("params") or {}, "user": peer_id[-64:],
                "timeout": inputs.get("timeout", 300.0), "max_price": request.get("max_price"),
                **{k: inputs[k] for k in ("messages", "prompt", "image", "audio") if k in inputs},
            })
            ticket = self.node.broker.submit(intent, local_only=True)
        except IntentError as e:
            code = "busy" if e.code in ("queue_full", "shutting_down") else "unsupported" if e.code == "no_model" else "bad_request"
            await send({"type": "error", "code": code, "message": e.message})
            return
        try:
            await send({"type": "accepted", "price": 0, "queue": ticket.position})
            async for event in ticket.events:
                frame = _to_frame(event)
                if frame is not None:
                    await send(frame)
        finally:
            if ticket.state in ("queued", "running"):  # the requester went away or cancelled
                self.node.broker.cancel(intent.id, "the requesting peer cancelled")

    # ---- this node's broker asks the realm (RemoteRouter) ---------------------------------------

    def _model_for(self, intent: Intent) -> str | None:
        if intent.model:
            return intent.model
        # No model named: the model of this kind that most live peers serve.
        counts = Counter()
        for peer in self.fed.peers.snapshot():
            if peer["fresh"] and not peer["blocked"] and peer["health"] > 0:
                for name in peer["models"].get(intent.kind, []):
                    counts[name] += 1
        return counts.most_common(1)[0][0] if counts else None

    def can_serve(self, intent: Intent) -> bool:
        model = self._model_for(intent)
        if model and self.fed.candidates(intent.kind, model):
            return True
        # A fresh broker may know providers only through the DHT: let route() look them up.
        return bool(intent.model) and self.fed.dht is not None and self.fed.stats["connected_peers"] > 0

    async def run_remote(self, intent: Intent, emit: Callable[[dict], Awaitable[None]]) -> tuple[dict, str]:
        model = self._model_for(intent)
        if model is None:
            raise BackendError("no_model", f"no peer in the realm serves {intent.kind}")
        inputs = {k: v for k, v in (("messages", intent.messages), ("prompt", intent.prompt),
                                    ("image", intent.image), ("audio", intent.audio)) if v is not None}
        inputs["timeout"] = intent.timeout
        request = {"id": intent.id, "kind": intent.kind, "model": model, "params": dict(intent.params),
                   "inputs": inputs, "max_price": intent.max_price}

        async def on_event(frame: dict) -> None:
            event = _from_frame(frame)
            if event is not None:
                await emit(event)

        t0 = time.monotonic()
        try:
            result = await self.fed.route(request, on_event, timeout=max(1.0, intent.timeout - 0.5))
        except IntentFailed as e:
            raise BackendError(e.code, e.message, retryable=e.retryable) from None
        output = result.get("output") if isinstance(result.get("output"), dict) else {"output": result.get("output")}
        log.debug("intent %s served by %s in %.3f s", intent.id, result.get("peer_id"), time.monotonic() - t0)
        return {**output, "units": result.get("units", 0), "cost": result.get("price", 0)}, result.get("peer_id", "")


def _to_frame(event: dict) -> dict | None:
    t = event["type"]
    if t == "chunk":
        return {"type": "chunk", "data": event["text"] if "text" in event else event.get("audio", b"")}
    if t == "progress":
        return {"type": "progress", "done": event.get("step", 0), "total": event.get("total")}
    if t == "queued":
        return {"type": "progress", "done": 0, "position": event.get("position") or 0}
    if t == "result":
        output = {k: v for k, v in event.items() if k not in ("type", "id", "units", "peer", "duration_ms")}
        return {"type": "result", "output": output, "units": int(event.get("units", 0) or 0)}
    if t == "error":
        return {"type": "error", "code": event["code"], "message": event["message"]}
    return None  # started: local bookkeeping only


def _from_frame(frame: dict) -> dict | None:
    t = frame["type"]
    if t == "chunk":
        data = frame["data"]
        return {"type": "chunk", "text": data} if isinstance(data, str) else {"type": "chunk", "audio": data, "format": "wav"}
    if t == "progress":
        if frame.get("position"):
            return {"type": "queued", "position": frame["position"], "remote": True}
        return {"type": "progress", "step": frame.get("done", 0), "total": frame.get("total")}
    if t == "accepted":
        return {"type": "accepted", "price": frame.get("price", 0)}
    if t == "failover":
        return {"type": "failover", "from": frame.get("from"), "code": frame.get("code"), "message": frame.get("message")}
    return None
