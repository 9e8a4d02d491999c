"""The broker: takes intents, queues them fairly, runs many at once, streams events back.

Each submitted intent gets one task for its whole life (queue wait + run) under one deadline, so a
timeout, a cancel or a shutdown always ends it with a final event and nothing is left hanging.
The dispatcher only decides *when* a queued intent may start.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

import trio

from .backends import BackendError
from .fair_queue import FairQueue, QueueFull
from .intents import Intent, IntentError
from .models import ModelManager
from .store import Store

if TYPE_CHECKING:
    from federation.market import RouteResult

log = logging.getLogger("mtor.broker")

POSITION_UPDATE_PERIOD_S = 0.1  # position updates are coalesced: a busy queue must not flood clients
POSITION_UPDATE_MIN_GAP_S = 1.0


class RemoteRouter(Protocol):
    """Routes intents to other peers (mtor_node/remote_router.py). None on a node with no network."""

    def plan(self, intent: Intent, local_model: str | None = None, exclude=(), max_price: int | None = None) -> RouteResult: ...

    def quote(self, intent: Intent, local_model: str | None = None) -> dict: ...

    def can_serve(self, intent: Intent) -> bool: ...

    async def run_remote(self, intent: Intent, emit: Callable[[dict], Awaitable[None]]) -> tuple[dict, str]: ...

    def finished(self, intent_id: str) -> None: ...


@dataclass(eq=False)
class Ticket:
    intent: Intent
    send: trio.MemorySendChannel
    events: trio.MemoryReceiveChannel
    deadline: float
    submitted: float = field(default_factory=time.monotonic)
    go: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope | None = None
    cancel_reason: str = ""
    state: str = "queued"  # queued | running | done | failed | cancelled
    position: int | None = None
    position_sent: float = 0.0  # when the last position update went to the client
    target: str = ""  # local model name, or "remote"
    dispatched: bool = False
    local_only: bool = False  # an intent a peer sent to this node's worker

    def emit_nowait(self, event: dict) -> None:
        try:
            self.send.send_nowait(event)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the client went away; the intent is cancelled by its reader closing

    async def emit(self, event: dict) -> None:
        if "id" not in event:  # backends' chunks and progress carry no id; clients multiplex by it
            event = {**event, "id": self.intent.id}
        self.emit_nowait(event)


class Broker:
    def __init__(self, store: Store, models: ModelManager | None, *, max_size: int, max_inflight: int,
                 default_timeout: float, node_id: str = "local"):
        self.store = store
        self.models = models
        self.remote: RemoteRouter | None = None
        self.accounts = None  # UserAccounts when ledger.user_accounts is on (set by the network)
        self.node_id = node_id
        self.max_inflight = max_inflight
        self.default_timeout = default_timeout
        self.queue: FairQueue[Ticket] = FairQueue(max_size, key=lambda t: t.intent.id, user=lambda t: t.intent.user)
        self.tickets: dict[str, Ticket] = {}
        self.inflight = 0
        self.counters = {"submitted": 0, "done": 0, "failed": 0, "cancelled": 0, "rejected": 0}
        self._nursery: trio.Nursery | None = None
        self._wake = trio.Event()
        self._positions_dirty = trio.Event()
        self.closing = False

    # ---- submitting -------------------------------------------------------------------------

    def submit(self, intent: Intent, local_only: bool = False) -> Ticket:
        """Accept an intent into the queue, or raise IntentError with the reason (queue full, ...).

        `local_only`: run it on this node's own models (an intent a peer routed here).
        """
        if self._nursery is None or self.closing:
            raise IntentError("shutting_down", "the node is shutting down")
        if self.store.is_banned(intent.user):
            self.counters["rejected"] += 1
            raise IntentError("banned", f"user {intent.user!r} is banned on this node")
        target = self._local_model(intent)
        if not local_only and self.accounts is not None and self.remote is not None:
            quote = self.remote.quote(intent, target)
            if quote.get("ok") and quote.get("price"):
                try:
                    self.accounts.check(intent.user, quote["price"])
                except IntentError:
                    self.counters["rejected"] += 1
                    raise
        if not local_only and self.remote is not None and intent.max_price is not None:
            plan = self.remote.plan(intent, local_model=target)
            if plan.reason == "over_max_price":
                self.counters["rejected"] += 1
                raise IntentError("price", plan.message)
        if target is None and (local_only or not (self.remote and self.remote.can_serve(intent))):
            self.counters["rejected"] += 1
            why = self.models.why_not(intent.kind, intent.model) if self.models else ""
            raise IntentError("no_model", f"no worker serves {intent.kind} with model {intent.model or '(default)'}"
                              + (f" ({why})" if why else ""))
        if intent.id in self.tickets:
            raise IntentError("duplicate", f"intent {intent.id} is already queued")
        send, recv = trio.open_memory_channel(math.inf)  # events are small; a slow reader must not stall a model
        ticket = Ticket(intent, send, recv, deadline=trio.current_time() + intent.timeout, local_only=local_only)
        try:
            ticket.position = self.queue.put(ticket)
        except QueueFull as e:
            self.counters["rejected"] += 1
            raise IntentError("queue_full", str(e)) from None
        self.tickets[intent.id] = ticket
        self.counters["submitted"] += 1
        ticket.emit_nowait({"type": "queued", "id": intent.id, "position": ticket.position})
        self._nursery.start_soon(self._lifecycle, ticket)
        self._kick()
        return ticket

    def cancel(self, intent_id: str, reason: str = "cancelled by the user") -> bool:
        ticket = self.tickets.get(intent_id)
        if ticket is None or ticket.state not in ("queued", "running"):
            return False
        ticket.cancel_reason = reason
        if ticket.scope is not None:
            ticket.scope.cancel()
        else:  # its task has not started yet: it will see the reason at once
            ticket.go.set()
        return True

    def oldest_waiting(self, local_only: bool = False) -> tuple[str, float] | None:
        """(kind, seconds waiting) of the oldest queued intent: the surge meter's early signal."""
        now = time.monotonic()
        waiting = [t for t in self.tickets.values() if t.state == "queued" and (t.local_only or not local_only)]
        if not waiting:
            return None
        oldest = min(waiting, key=lambda t: t.submitted)
        return oldest.intent.kind, now - oldest.submitted

    def queue_snapshot(self) -> list[dict]:
        order = {t.intent.id: i for i, t in enumerate(self.queue.order(), start=1)}
        return [
            {"id": t.intent.id, "user": t.intent.user, "kind": t.intent.kind, "model": t.intent.model,
             "state": t.state, "position": order.get(t.intent.id), "target": t.target,
             "age_s": round(time.monotonic() - t.submitted, 2)}
            for t in self.tickets.values()
        ]

    # ---- running ----------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._publish_positions)
            task_status.started()
            try:
                await self._dispatch_forever()
            finally:
                self.closing = True

    def _kick(self) -> None:
        self._wake.set()
        self._positions_dirty.set()

    def _local_model(self, intent: Intent) -> str | None:
        return self.models.resolve(intent.kind, intent.model) if self.models else None

    def _can_run(self, ticket: Ticket) -> bool:
        if ticket.cancel_reason:
            return True  # let it start so it ends at once
        if self.inflight >= self.max_inflight:
            return False
        local = self._local_model(ticket.intent)
        local_free = bool(local) and self.models.has_capacity(local)
        if ticket.local_only or self.remote is None:
            if local_free:
                ticket.target = local
            return local_free
        # The node's own worker competes with the realm's on equal terms: cheapest, then fastest.
        plan = self.remote.plan(ticket.intent, local_model=local if local_free else None)
        if not plan.ok:
            return False
        ticket.target = local if plan.best.local else "remote"
        return True

    async def _dispatch_forever(self) -> None:
        while True:
            # One answer per (kind, model, ...) within a pass: with many users waiting on a busy
            # model, asking every head again would make each dispatch O(queue).
            memo: dict[tuple, tuple[bool, str]] = {}

            def can_run(t: Ticket) -> bool:
                if t.cancel_reason:
                    return True
                i = t.intent
                key = (i.kind, i.model, i.max_price, t.local_only)
                if key not in memo:
                    memo[key] = (self._can_run(t), t.target)
                ok, t.target = memo[key]
                return ok

            ticket = self.queue.take(can_run) if self.inflight < self.max_inflight else None
            if ticket is None:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            if not ticket.cancel_reason:
                ticket.state, ticket.dispatched = "running", True
                self.inflight += 1
                if ticket.target != "remote":
                    self.models.reserve(ticket.target)
            ticket.go.set()
            self._positions_dirty.set()

    async def _publish_positions(self) -> None:
        while True:
            await self._positions_dirty.wait()
            self._positions_dirty = trio.Event()
            now = time.monotonic()
            for key, pos in self.queue.positions().items():
                t = self.tickets.get(key)
                # Each client hears of its own position at most once a second (more often near
                # the front): with n waiting, every dispatch moves all n, and n^2 updates would
                # swamp a busy node.
                if t is not None and t.position != pos and (pos <= 3 or now - t.position_sent >= POSITION_UPDATE_MIN_GAP_S):
                    t.position, t.position_sent = pos, now
                    t.emit_nowait({"type": "queued", "id": key, "position": pos})
            await trio.sleep(POSITION_UPDATE_PERIOD_S)

    async def _lifecycle(self, ticket: Ticket) -> None:
        intent = ticket.intent
        started = None
        final: dict
        with trio.CancelScope(deadline=ticket.deadline) as scope:
            ticket.scope = scope
            if ticket.cancel_reason:
                scope.cancel()
            try:
                await ticket.go.wait()
                if not ticket.dispatched:  # woken by a cancel before dispatch
                    scope.cancel()
                    await trio.lowlevel.checkpoint()
                started = time.monotonic()
                await ticket.emit({"type": "started", "id": intent.id, "target": ticket.target})
                result, peer = await self._execute(ticket)
                final = {"type": "result", "id": intent.id, **result, "peer": peer,
                         "duration_ms": int((time.monotonic() - started) * 1000)}
                ticket.state = "done"
            except BackendError as e:
                final = {"type": "error", "id": intent.id, "code": e.code, "message": e.message}
                ticket.state = "failed"
            except IntentError as e:
                final = {"type": "error", "id": intent.id, "code": e.code, "message": e.message}
                ticket.state = "failed"
            except Exception as e:  # a bug in a backend must end this intent, not the node
                log.exception("intent %s failed", intent.id)
                final = {"type": "error", "id": intent.id, "code": "internal", "message": f"{type(e).__name__}: {e}"}
                ticket.state = "failed"
        if scope.cancelled_caught:
            if ticket.cancel_reason:
                final = {"type": "error", "id": intent.id, "code": "cancelled", "message": ticket.cancel_reason}
                ticket.state = "cancelled"
            else:
                why = ""
                if not ticket.dispatched and self.remote is not None and not ticket.local_only:
                    why = self.remote.plan(intent, local_model=self._local_model(intent)).message
                final = {"type": "error", "id": intent.id, "code": "timeout",
                         "message": f"the intent did not finish within its {intent.timeout:g} s time limit"
                                    + (f" (still queued: {why})" if why else "")}
                ticket.state = "failed"
        self._finish(ticket, final, started)

    def _finish(self, ticket: Ticket, final: dict, started: float | None) -> None:
        """Synchronous on purpose: it also runs during shutdown, when nothing may be awaited."""
        intent = ticket.intent
        if ticket.dispatched:
            self.inflight -= 1
            if ticket.target != "remote":
                self.models.release(ticket.target)
        else:
            self.queue.remove(intent.id)
        if self.remote is not None:
            self.remote.finished(intent.id)
        ticket.emit_nowait(final)
        ticket.send.close()
        self.tickets.pop(intent.id, None)
        self.counters[{"done": "done", "cancelled": "cancelled"}.get(ticket.state, "failed")] += 1
        if self.accounts is not None and final["type"] == "result" and not ticket.local_only:
            self.accounts.debit(intent.user, intent.id, int(final.get("cost", 0) or 0))
        try:
            self.store.record_query(
                id=intent.id, user=intent.user, kind=intent.kind, model=intent.model or ticket.target or "",
                prompt=intent.text_input, status=ticket.state, error=final.get("message", "") if final["type"] == "error" else "",
                peer=final.get("peer", ""), duration_ms=int((time.monotonic() - started) * 1000) if started else 0,
                cost=int(final.get("cost", 0) or 0),
            )
        except Exception:
            log.exception("could not record intent %s in history", intent.id)
        self._kick()

    async def _execute(self, ticket: Ticket) -> tuple[dict, str]:
        intent = ticket.intent
        if ticket.target and ticket.target != "remote":
            return await self.models.run(ticket.target, intent, ticket.emit), self.node_id
        if self.remote is None:
            raise IntentError("no_model", f"no worker serves {intent.kind} with model {intent.model or '(default)'}")
        return await self.remote.run_remote(intent, ticket.emit)

    async def shutdown(self) -> None:
        """Refuse new intents and end every queued or running one with an error."""
        self.closing = True
        for ticket in list(self.tickets.values()):
            self.cancel(ticket.intent.id, "the node is shutting down")
