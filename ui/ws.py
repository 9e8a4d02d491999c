"""The WebSocket API at /ws: what the page uses for intents, broadcasts and the wake word.

One connection = one reader (messages in), one writer (messages out, through a bounded channel so
a slow page gets back-pressure instead of unbounded memory), a task per running intent, and, while
the microphone streams, a wake-word listener. Closing the socket cancels everything it started.

Messages are JSON text frames, except microphone audio: binary frames of 16 kHz mono int16 PCM.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import time
from contextlib import aclosing

import trio
from quart import Blueprint, current_app, websocket

from mtor_node.intents import IntentError

from .encoding import intent_from_json, jsonable
from .intake import FINAL, BadJson, follow, outcome_of, parse_json, submit, ui_state
from .vad import SAMPLE_RATE, Segmenter, wav_bytes
from .wakeword import WakeWord

log = logging.getLogger("mtor.ui.ws")

ws_bp = Blueprint("ws", __name__)

MAX_INTENTS_PER_CONNECTION = 16
MAX_TEXT_FRAME = 16 * 1024 * 1024  # a 10 MiB image as base64 plus the rest of the intent
MAX_AUDIO_FRAME = 64 * 1024  # ~2 s of 16 kHz PCM: the page sends ~100 ms at a time
MAX_HEARD_CHARS = 2000
OUTBOX = 256  # messages waiting for a slow page before its intents wait for it
UTTERANCE_BACKLOG = 4  # utterances waiting for transcription; more are dropped (the speaker is far ahead)
QUEUED_EVERY_S = 1.0  # queue positions relayed to a page at most this often per intent
USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


class Connection:
    def __init__(self, state):
        self.state = state
        self.user = "web-" + secrets.token_hex(4)
        self.out_send, self.out_recv = trio.open_memory_channel(OUTBOX)
        self.intents: dict[str, object] = {}  # id -> ticket
        self.nursery: trio.Nursery | None = None
        self.wake: WakeWord | None = None
        self.segmenter: Segmenter | None = None
        self.utter_send: trio.MemorySendChannel | None = None
        self.wake_model: str | None = None
        self.wake_language: str | None = "en"
        self.sysop = False  # said hello with the sysop token
        self.watch_queue = False  # said hello with "queue": true: gets the queue thermometer
        self.voice_remote = False  # privacy: the browser's voice is transcribed here unless the user allows the realm

    def push_nowait(self, msg: dict) -> bool:
        """For broadcasts: never wait on one slow page; it misses the message instead."""
        try:
            self.out_send.send_nowait(msg)
            return True
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return False

    async def push(self, msg: dict) -> None:
        try:
            await self.out_send.send(msg)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    # ---- messages in ----------------------------------------------------------------------

    async def handle_text(self, raw: str) -> None:
        try:
            msg = parse_json(raw)  # also refuses deep nesting and lone surrogates
        except BadJson as e:
            return await self.push({"type": "error", "code": "bad_request",
                                    "message": "messages must be JSON" if e.message == BadJson().message else e.message})
        if not isinstance(msg, dict):
            return await self.push({"type": "error", "code": "bad_request", "message": "messages must be JSON objects"})
        handler = HANDLERS.get(msg.get("type"))
        if handler is None:
            return await self.push({"type": "error", "code": "bad_type",
                                    "message": f"unknown message type {str(msg.get('type'))[:40]!r}; known: {', '.join(HANDLERS)}"})
        await handler(self, msg)

    async def on_hello(self, msg: dict) -> None:
        user = msg.get("user")
        if isinstance(user, str) and USER_ID.match(user):
            self.user = user
        token = msg.get("sysop_token")  # a sysop page: it also gets the watchdog's alerts
        svc = self.state.service
        self.sysop = isinstance(token, str) and svc.is_sysop_token(token)
        await self.push({"type": "welcome", "user": self.user, "peer_id": svc.peer_id,
                         "banned": svc.is_banned(self.user), "broadcasts": list(self.state.broadcasts),
                         "summary": svc.welcome(self.user, len(self.state.connections))})
        self.watch_queue = msg.get("queue") is True  # the page's thermometer: live queue messages
        if self.watch_queue:
            await self.push({"type": "queue", **svc.queue_view()})

    async def on_ping(self, msg: dict) -> None:
        await self.push({"type": "pong", "t": msg.get("t") if isinstance(msg.get("t"), (int, float)) else None})

    async def on_submit(self, msg: dict) -> None:
        ref = msg.get("ref") if isinstance(msg.get("ref"), (str, int)) else None
        try:
            if len(self.intents) >= MAX_INTENTS_PER_CONNECTION:
                raise IntentError("too_many", f"at most {MAX_INTENTS_PER_CONNECTION} intents at once per connection")
            d = intent_from_json(msg.get("intent"))
            d["user"] = self.user  # a page speaks for its own user only
            ticket = submit(self.state, d, local_only=d.get("kind") == "transcribe" and not self.voice_remote)
        except IntentError as e:
            return await self.push({"type": "rejected", "ref": ref, "code": e.code, "message": e.message})
        self.intents[ticket.intent.id] = ticket
        await self.push({"type": "accepted", "ref": ref, "id": ticket.intent.id, "kind": ticket.intent.kind})
        self.nursery.start_soon(self._forward, ticket)

    async def _forward(self, ticket) -> None:
        """Relay a ticket's events to the page. Queue positions are throttled (the newest one at most
        every QUEUED_EVERY_S): with a thousand intents waiting, the broker moves every position every
        0.1 s, and relaying each would cost more than the answers themselves."""
        intent_id = ticket.intent.id
        pending, last_sent, final = None, -math.inf, None
        try:
            while True:
                event = None
                wait = last_sent + QUEUED_EVERY_S - trio.current_time() if pending else math.inf
                with trio.move_on_after(max(0.0, wait)):  # only the wait: never cut a push short
                    try:
                        event = await ticket.events.receive()
                    except trio.EndOfChannel:
                        break
                if event is None:  # quiet for a while: the newest position, a little late
                    await self.push({**pending, "id": intent_id})
                    pending, last_sent = None, trio.current_time()
                    continue
                if event["type"] == "queued" and trio.current_time() - last_sent < QUEUED_EVERY_S:
                    pending = event
                    continue
                if event["type"] == "started":
                    pending = None  # the position no longer matters
                if pending is not None:
                    await self.push({**pending, "id": intent_id})
                    pending = None
                if event["type"] == "queued":
                    last_sent = trio.current_time()
                if event["type"] in FINAL:
                    final = event
                # backends' chunk/progress events carry no id; a page multiplexes many intents
                await self.push(jsonable({**event, "id": intent_id}))
        finally:
            self.intents.pop(intent_id, None)
            if final is None:
                self.state.service.broker.cancel(intent_id, "the page disconnected")
            self.state.metrics.record(ticket.intent.kind, outcome_of(final), time.monotonic() - ticket.submitted)

    async def on_cancel(self, msg: dict) -> None:
        intent_id = msg.get("id")
        ok = isinstance(intent_id, str) and intent_id in self.intents and \
            self.state.service.broker.cancel(intent_id, "cancelled by the user")
        await self.push({"type": "cancel_ack", "id": intent_id if isinstance(intent_id, str) else None, "ok": bool(ok)})

    # ---- the wake word --------------------------------------------------------------------

    async def on_audio_start(self, msg: dict) -> None:
        if msg.get("sample_rate", SAMPLE_RATE) != SAMPLE_RATE:
            return await self.push({"type": "error", "code": "bad_audio", "message": f"send {SAMPLE_RATE} Hz mono int16 PCM"})
        model, lang = msg.get("model"), msg.get("language", "en")
        self.wake_model = model if isinstance(model, str) and 0 < len(model) <= 200 else None
        self.wake_language = lang if isinstance(lang, str) and 2 <= len(lang) <= 8 else None
        self.wake = self.wake or WakeWord()
        self.segmenter = Segmenter()
        if isinstance(msg.get("allow_remote"), bool):
            self.voice_remote = msg["allow_remote"]
        if self.utter_send is None:
            self.utter_send, recv = trio.open_memory_channel(UTTERANCE_BACKLOG)
            self.nursery.start_soon(self._listen, recv)
        await self.push(self.wake.snapshot())

    async def on_audio_stop(self, msg: dict) -> None:
        if self.segmenter is not None:
            for utterance in self.segmenter.flush():
                self._queue_utterance(utterance)
            self.segmenter = None
        await self.push({"type": "audio_stopped"})

    async def handle_audio(self, pcm: bytes) -> None:
        if self.segmenter is None:
            return await self.push({"type": "error", "code": "bad_audio", "message": "send audio_start before audio"})
        if len(pcm) > MAX_AUDIO_FRAME:
            return await self.push({"type": "error", "code": "too_large", "message": f"audio frames are limited to {MAX_AUDIO_FRAME} bytes"})
        for utterance in self.segmenter.feed(pcm):
            self._queue_utterance(utterance)

    def _queue_utterance(self, pcm: bytes) -> None:
        try:
            self.utter_send.send_nowait(pcm)
        except trio.WouldBlock:
            self.push_nowait({"type": "wake_dropped", "message": "speech arrives faster than it is transcribed"})

    async def on_heard(self, msg: dict) -> None:
        """Text from the browser's own recognizer (the optional accelerator): same state machine."""
        text = msg.get("text")
        if not isinstance(text, str) or len(text) > MAX_HEARD_CHARS:
            return await self.push({"type": "error", "code": "bad_request", "message": f"heard.text must be a string of at most {MAX_HEARD_CHARS} characters"})
        await self._hear(text)

    async def on_wake_reset(self, msg: dict) -> None:
        self.wake = WakeWord()
        await self.push(self.wake.snapshot())

    async def on_voice_privacy(self, msg: dict) -> None:
        """{"allow_remote": true}: the realm's peers may transcribe this page's voice (off by default)."""
        if not isinstance(msg.get("allow_remote"), bool):
            return await self.push({"type": "error", "code": "bad_request", "message": "allow_remote must be true or false"})
        self.voice_remote = msg["allow_remote"]
        await self.push({"type": "voice_privacy", "allow_remote": self.voice_remote})

    async def on_wake_silence(self, msg: dict) -> None:
        """The page heard nothing for a while (its timer): the state machine asks, then sleeps."""
        self.wake = self.wake or WakeWord()
        for event in self.wake.silence():
            await self.push(event)

    async def on_wake_greet(self, msg: dict) -> None:
        self.wake = self.wake or WakeWord()
        for event in self.wake.greeting():
            await self.push(event)

    async def _hear(self, text: str) -> None:
        self.wake = self.wake or WakeWord()
        await self.push({"type": "heard", "text": text})
        for event in self.wake.hear(text):
            await self.push(event)

    async def _listen(self, utterances: trio.MemoryReceiveChannel) -> None:
        """Transcribe utterances one after another (order matters to the conversation)."""
        async for pcm in utterances:
            # vad off: the utterance is already cut out, and Whisper's own filter clips short words
            params = {"vad": False, **({"language": self.wake_language} if self.wake_language else {})}
            intent = {"kind": "transcribe", "audio": wav_bytes(pcm), "model": self.wake_model, "user": self.user,
                      "params": params, "timeout": 60.0}
            t0 = time.monotonic()
            try:
                ticket = submit(self.state, intent, local_only=not self.voice_remote)
            except IntentError as e:
                why = e.message + ("; your voice stays on this node unless you allow the realm to hear it"
                                   if e.code == "no_model" and not self.voice_remote else "")
                await self.push({"type": "wake_error", "code": e.code, "message": why})
                continue
            final = None
            async with aclosing(follow(self.state, ticket)) as events:
                async for event in events:
                    if event["type"] in FINAL:
                        final = event
            if final is None or final["type"] == "error":
                await self.push({"type": "wake_error", "code": (final or {}).get("code", "internal"),
                                 "message": (final or {}).get("message", "no transcription")})
                continue
            text = (final.get("text") or "").strip()
            log.debug("heard %r in %.2f s (%.2f s of speech)", text, time.monotonic() - t0, len(pcm) / 2 / SAMPLE_RATE)
            if text:
                await self._hear(text)


HANDLERS = {
    "hello": Connection.on_hello,
    "ping": Connection.on_ping,
    "submit": Connection.on_submit,
    "cancel": Connection.on_cancel,
    "audio_start": Connection.on_audio_start,
    "audio_stop": Connection.on_audio_stop,
    "heard": Connection.on_heard,
    "wake_reset": Connection.on_wake_reset,
    "wake_silence": Connection.on_wake_silence,
    "voice_privacy": Connection.on_voice_privacy,
    "wake_greet": Connection.on_wake_greet,
}


QUEUE_FEED_S = 1.0  # the queue thermometer: sent to every page when it changed, at most this often


@ws_bp.before_app_serving
async def start_queue_feed():
    current_app.add_background_task(_queue_feed)


async def _queue_feed() -> None:
    """Every page sees the whole queue live (docs/ui.md): sent on change, never waiting on a page."""
    state = current_app.extensions["mtor_ui"]
    last = None
    while True:
        await trio.sleep(QUEUE_FEED_S)
        if not any(c.watch_queue for c in state.connections):
            continue
        try:
            view = state.service.queue_view()
        except Exception:  # the node is starting or stopping: try again at the next tick
            continue
        if view != last:
            last = view
            for conn in list(state.connections):
                if conn.watch_queue:
                    conn.push_nowait({"type": "queue", **view})


@ws_bp.websocket("/ws")
async def ws():
    state = ui_state()
    await websocket.accept()
    conn = Connection(state)
    state.connections.add(conn)
    try:
        async with trio.open_nursery() as nursery:
            conn.nursery = nursery
            nursery.start_soon(_writer, conn)
            try:
                while True:
                    data = await websocket.receive()
                    if isinstance(data, (bytes, bytearray)):
                        await conn.handle_audio(bytes(data))
                    elif len(data) > MAX_TEXT_FRAME:
                        await conn.push({"type": "error", "code": "too_large", "message": "message too large"})
                    else:
                        await conn.handle_text(data)
            finally:
                nursery.cancel_scope.cancel()
    finally:
        state.connections.discard(conn)
        for intent_id in list(conn.intents):
            state.service.broker.cancel(intent_id, "the page disconnected")


MAX_BATCH = 64


async def _writer(conn: Connection) -> None:
    """Send what is queued; when messages pile up (a busy node), merge consecutive text chunks of one
    intent and drop superseded queue positions, so a loaded node sends fewer, larger frames instead
    of falling further behind. An idle node sends every event as it comes."""
    async for msg in conn.out_recv:
        batch = [msg]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(conn.out_recv.receive_nowait())
            except trio.WouldBlock:
                break
        for m in coalesce(batch):
            await websocket.send(json.dumps(m))


def coalesce(batch: list[dict]) -> list[dict]:
    out: list[dict] = []
    for m in batch:
        prev = out[-1] if out else None
        if (prev is not None and m.get("type") == prev.get("type") and m.get("id") == prev.get("id")
                and set(m) == set(prev) and (m["type"] == "queued" or (m["type"] == "chunk" and set(m) == {"type", "id", "text"}))):
            if m["type"] == "chunk":
                out[-1] = {**prev, "text": prev["text"] + m["text"]}
            else:
                out[-1] = m  # only the newest position matters
            continue
        out.append(m)
    return out
