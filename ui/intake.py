"""One way in for every API (REST, WebSocket, OpenAI-compatible): validate, submit, follow events.

Following the events here is also where the metrics learn each intent's outcome and latency.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import AsyncIterator

import trio
from quart import current_app, request

from mtor_node.intents import KINDS, Intent, IntentError
from mtor_node.service import NodeService

from .metrics import Metrics

FINAL = ("result", "error")
# IntentError codes -> HTTP status: the client's fault is 4xx, a busy or stopping node is 503.
STATUS_BY_CODE = {"queue_full": 503, "shutting_down": 503, "banned": 403, "not_a_broker": 409,
                  "no_model": 404, "duplicate": 409, "too_large": 413}


@dataclass
class UiState:
    """What the UI layer keeps beside the node's facade: metrics and the open WebSocket connections."""

    service: NodeService
    connections: set = field(default_factory=set)
    broadcasts: list[dict] = field(default_factory=list)  # the last few, for pages that connect later
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        # the edge's counters join the node's registry; open connections are counted at scrape time
        self.metrics = Metrics(self.service.registry, lambda: len(self.connections))


MAX_JSON_DEPTH = 64  # arrays and objects inside each other; no intent needs more than a few


class BadJson(IntentError):
    """An unreadable JSON body; an IntentError so that every handler's `except IntentError` covers it."""

    def __init__(self, message: str = "the body must be JSON"):
        super().__init__("bad_request", message)


def parse_json(raw: bytes | str):
    """JSON from a client (HTTP body or WebSocket message), or BadJson: not UTF-8, not JSON, nested
    deeper than MAX_JSON_DEPTH (Python's parser would raise RecursionError), or text that is not
    Unicode (a lone surrogate escape like "\ud800", which SQLite and every encoder refuse later)."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        raise BadJson("the body must be UTF-8 JSON") from None
    except (ValueError, RecursionError):
        raise BadJson() from None
    stack = [(value, 1)]
    while stack:  # iterative: the check itself must not recurse
        v, depth = stack.pop()
        if isinstance(v, str):
            _check_text(v)
        elif isinstance(v, (list, dict)):
            if depth > MAX_JSON_DEPTH:
                raise BadJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused")
            if isinstance(v, dict):
                for k, x in v.items():
                    _check_text(k)
                    stack.append((x, depth + 1))
            else:
                stack.extend((x, depth + 1) for x in v)
    return value


def _check_text(s: str) -> None:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise BadJson("text must be valid Unicode: lone surrogate escapes (\\ud800-\\udfff) are refused") from None


async def read_json():
    """The request body parsed as JSON (parse_json); None when empty. Raises BadJson for anything
    unreadable (quart's get_json raises on invalid UTF-8, which would be a 500)."""
    raw = await request.get_data(cache=True, as_text=False)
    if not raw.strip():
        return None
    return parse_json(raw)


async def read_object(error: type[Exception]) -> dict:
    """The request body as a JSON object; anything else raises `error` (each API's own error shape)."""
    try:
        body = await read_json()
    except BadJson:
        body = None
    if not isinstance(body, dict):
        raise error("the body must be a JSON object")
    return body


def ui_state() -> UiState:
    return current_app.extensions["mtor_ui"]


def http_status(code: str) -> int:
    return STATUS_BY_CODE.get(code, 400)


def submit(state: UiState, d: dict, local_only: bool = False) -> "Ticket":  # noqa: F821 (mtor_node.broker.Ticket)
    """Validate a decoded intent dict (bytes already bytes) and queue it; raises IntentError.
    `local_only`: this node's own worker only (the browser's voice, unless the user allowed the realm)."""
    svc = state.service
    kind = d.get("kind") if isinstance(d, dict) and d.get("kind") in KINDS else "unknown"
    try:
        if "broker" not in svc.roles:
            raise IntentError("not_a_broker", "this node runs without the broker role and takes no intents from users")
        d.setdefault("timeout", svc.config["queue.timeout_s"])
        # The node names every intent: a client-chosen id could collide with another user's and
        # overwrite that user's history row. Clients refer to it by the id in `accepted`/results.
        return svc.broker.submit(Intent.from_dict({k: v for k, v in d.items() if k != "id"}), local_only=local_only)
    except IntentError:
        state.metrics.record(kind, "rejected")
        raise


def outcome_of(final: dict | None) -> str:
    if final is None:
        return "abandoned"
    if final["type"] == "result":
        return "done"
    return final.get("code") if final.get("code") in ("cancelled", "timeout") else "failed"


async def follow(state: UiState, ticket, cancel_reason: str = "the client disconnected") -> AsyncIterator[dict]:
    """Yield a ticket's events; if the consumer stops early, cancel the intent (nobody wants it)."""
    final = None
    try:
        async for event in ticket.events:
            if event["type"] in FINAL:
                final = event
            yield event
    finally:
        _followed(state, ticket, final, cancel_reason)


async def follow_batches(state: UiState, ticket, cancel_reason: str = "the client disconnected") -> AsyncIterator[list[dict]]:
    """follow(), a list at a time: each step yields every event that has arrived by then — one
    while the reader keeps up, several after the node was held up (a loaded machine) — so that a
    streaming answer writes a backlog of tokens as one HTTP chunk, not one send per token."""
    final = None
    try:
        async for event in ticket.events:
            batch = [event]
            while True:
                try:
                    batch.append(ticket.events.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            final = next((e for e in batch if e["type"] in FINAL), final)
            yield batch
    finally:
        _followed(state, ticket, final, cancel_reason)


def _followed(state: UiState, ticket, final: dict | None, cancel_reason: str) -> None:
    if final is None:
        state.service.broker.cancel(ticket.intent.id, cancel_reason)
    state.metrics.record(ticket.intent.kind, outcome_of(final), time.monotonic() - ticket.submitted)


async def run_to_end(state: UiState, ticket, on_event=None) -> dict:
    """Follow a ticket to its final event and return it (result or error)."""
    final: dict = {"type": "error", "code": "internal", "message": "the intent ended without a final event"}
    async for event in follow(state, ticket):
        if on_event is not None:
            await on_event(event)
        if event["type"] in FINAL:
            final = event
    return final
