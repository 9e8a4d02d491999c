"""`/mtor/intent/2`: request/response with streamed events over reusable libp2p streams.

Stream reuse: a new libp2p stream costs a multistream-select round trip (~3 ms in one process,
~6-7 ms across processes here), a reused one ~0.7 ms. So a stream carries many requests one
after another: the client keeps up to `pool_size` idle streams per peer and takes one per
request; after the result (or an error frame) the stream is clean and goes back to the pool.
A stream whose request was cut short (timeout, cancel, bad frame) is reset, never reused.
Concurrent requests to one peer use separate streams (no head-of-line blocking).

The server reads frames in a loop on each stream (idle timeout), runs one job at a time per
stream, and cancels the job when the client sends `cancel` or the stream goes away.

Frames are typed (federation/frames.py); the application still sees and sends plain dicts
(`frames.to_dict` / `frames.from_dict`), checked like the wire. The job's one receipt is the
ledger's, signed by the worker's application and carried in the result frame's `receipt` field;
this module carries it and never signs or checks it (docs/protocol.md §5).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from . import frames, keys
from .conn import reset_stream
from .frames import EVENT_TYPES, FrameError
from .wire import DEFAULT_MAX_FRAME, StreamClosed, read_frame, write_frame

log = logging.getLogger(__name__)

PROTOCOL = "/mtor/intent/2"

Send = Callable[[dict], Awaitable[None]]
Handler = Callable[[str, dict, Send], Awaitable[None]]
OnEvent = Callable[[dict], Awaitable[None]]

# error code -> retryable on another worker by default
ERROR_CODES: dict[str, bool] = {
    "bad_request": False,  # the request itself is invalid: another worker will say the same
    "unsupported": True,  # this worker does not serve kind/model
    "busy": True,  # worker at capacity
    "price": True,  # worker's price is above max_price
    "worker_error": True,  # handler failed
    "no_result": True,  # handler returned without a result
    "timeout": True,
    "disconnected": True,
    "protocol": True,  # the peer sent a bad frame
    "bad_receipt": True,  # the broker refused the worker's ledger receipt (mtor_node/network.py)
    "cancelled": False,
    "no_candidates": False,
    "blocked": False,
}


class IntentFailed(Exception):
    def __init__(self, code: str, message: str, retryable: bool | None = None, price: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = ERROR_CODES.get(code, True) if retryable is None else retryable
        self.price = price  # code "price": the worker's current price (error frame field "price")


@dataclass
class Limits:
    max_frame: int = DEFAULT_MAX_FRAME
    frame_timeout: float = 30.0  # longest silence between two frames of one job
    idle_timeout: float = 120.0  # server closes a stream idle this long
    pool_idle: float = 60.0  # client drops pooled streams idle this long (< idle_timeout)
    write_timeout: float = 30.0
    pool_size: int = 16


def new_request_id() -> str:
    return uuid.uuid4().hex


def _pid(stream: Any) -> str:
    return stream.muxed_conn.peer_id.to_base58()


# ======================================================================= server


class _JobAborted(Exception):
    pass


class IntentServer:
    def __init__(self, signer: keys.Signer, limits: Limits | None = None) -> None:
        self.signer = signer  # the node key: whose stream this is (receipts are the ledger's)
        self.limits = limits or Limits()
        self.handler: Handler | None = None
        # (peer, reason) for a frame that broke the protocol: Federation gives the peer a strike
        self.on_bad_frame: Callable[[str, str], Awaitable[None]] | None = None
        from .budget import PeerBudget

        # streams and bytes in flight per peer (issue 12 #5); 64 streams: a busy broker keeps up to
        # pool_size idle streams and one per concurrent intent
        self.budget = PeerBudget(max_streams=64)
        self.stats = {"jobs": 0, "results": 0, "errors": 0, "bad_frames": 0}

    async def handle_stream(self, stream: Any) -> None:
        from .budget import OverBudget

        peer = _pid(stream)
        try:
            self.budget.open_stream(peer)
        except OverBudget as exc:
            self.stats["bad_frames"] += 1
            log.info("intent: %s: %s", peer, exc)
            await reset_stream(stream)
            return
        try:
            await self._serve_stream(stream, peer)
        finally:
            self.budget.close_stream(peer)

    async def _serve_stream(self, stream: Any, peer: str) -> None:
        lim = self.limits
        write_lock = trio.Lock()

        async def write(frame: frames.Frame) -> bytes:
            async with write_lock:
                return await write_frame(stream, frame, max_frame=lim.max_frame, timeout=lim.write_timeout)

        job: dict[str, Any] = {}
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    try:
                        frame, _ = await read_frame(stream, max_frame=lim.max_frame, timeout=lim.idle_timeout,
                                                    budget=self.budget, peer=peer)
                    except FrameError as exc:
                        self.stats["bad_frames"] += 1
                        log.info("intent: bad frame from %s: %s", peer, exc)
                        if exc.reason == "over_budget":  # too much in flight from this peer: not garbage
                            await _try_write(write, frames.Error(id=job.get("id", ""), code="busy",
                                                                 message=str(exc)[:200]))
                            job["broken"] = True  # the frame's body is still coming: reset, do not reuse
                            break
                        if "scope" not in job:
                            await _try_write(write, frames.Error(id="", code="protocol", message=exc.reason))
                        if self.on_bad_frame is not None:
                            await self.on_bad_frame(peer, f"bad frame: {exc}"[:200])
                        break
                    except (StreamClosed, trio.TooSlowError):
                        break
                    except Exception:  # reset/closed connection
                        break
                    if isinstance(frame, frames.Ping):
                        await write(frames.Pong(id=frame.id))
                    elif isinstance(frame, frames.Cancel):
                        if job.get("id") == frame.id and "scope" in job:
                            job["scope"].cancel()
                    elif isinstance(frame, frames.Request):
                        if "scope" in job:
                            await write(frames.Error(id=frame.id, code="protocol",
                                                     message="one request at a time per stream"))
                            break
                        job.clear()
                        job["id"] = frame.id
                        job["scope"] = trio.CancelScope()
                        nursery.start_soon(self._run_job, peer, frame, write, job)
                    else:
                        await _try_write(write, frames.Error(id=frame.id, code="protocol",
                                                             message=f"unexpected frame {_tag(frame)}"))
                        break
                # reader is done: the client went away or broke the protocol -> stop the job
                if "scope" in job:
                    job["scope"].cancel()
        finally:
            await reset_stream(stream) if job.get("broken") else await _close(stream)

    async def _run_job(self, peer: str, req: frames.Request, write: Callable[[frames.Frame], Awaitable[bytes]],
                       job: dict) -> None:
        self.stats["jobs"] += 1
        rid = req.id
        st: dict[str, Any] = {"accepted": None, "done": False}

        async def send(event: dict) -> None:
            if st["done"]:
                raise RuntimeError("job already finished")
            ev = frames.from_dict({**event, "id": rid})  # the application must send well-formed frames too
            t = _tag(ev)
            if t not in ("accepted", "result", "error") and t not in EVENT_TYPES:
                raise ValueError(f"handler cannot send {t!r}")
            if t == "accepted" and st["accepted"] is not None:
                raise RuntimeError("already accepted")
            if st["accepted"] is None and t != "error":
                price = ev.price if isinstance(ev, frames.Accepted) else int(req.quote or 0)
                if req.max_price is not None and price > req.max_price:
                    await self._finish_error(write, st, rid, "price", f"price {price} > max_price {req.max_price}",
                                             price)
                    raise _JobAborted()
                st["accepted"] = price
                await write(frames.Accepted(id=rid, price=price,
                                            queue=ev.queue if isinstance(ev, frames.Accepted) else None))
                if t == "accepted":
                    return
            if isinstance(ev, frames.Error):
                if ev.retryable is None:
                    ev = msgspec.structs.replace(ev, retryable=ERROR_CODES.get(ev.code, True))
                st["done"] = True
                self.stats["errors"] += 1
                await write(ev)
                return
            await write(ev)
            if t == "result":
                st["done"] = True
                self.stats["results"] += 1

        try:
            with job["scope"]:
                if self.handler is None:
                    await self._finish_error(write, st, rid, "unsupported", "this node serves no intents")
                else:
                    await self.handler(peer, frames.to_dict(req), send)
                if not st["done"]:
                    await self._finish_error(write, st, rid, "no_result", "handler returned without a result")
        except _JobAborted:
            pass
        except Exception as exc:  # the handler's failure must not end the host
            log.warning("intent handler failed for %s: %r", rid, exc)
            if not st["done"]:
                if isinstance(exc, (trio.TooSlowError,)) or "stream" in type(exc).__name__.lower():
                    job["broken"] = True
                else:
                    await self._finish_error(write, st, rid, "worker_error", f"{type(exc).__name__}: {exc}"[:500])
        finally:
            if job["scope"].cancelled_caught:
                job["broken"] = True
            job.pop("scope", None)

    async def _finish_error(self, write, st: dict, rid: str, code: str, message: str,
                            price: int | None = None) -> None:
        st["done"] = True
        self.stats["errors"] += 1
        await _try_write(write, frames.Error(id=rid, code=code, message=message[:4096],
                                             retryable=ERROR_CODES.get(code, True), price=price))


def _tag(frame: frames.Frame) -> str:
    return frame.__struct_config__.tag  # type: ignore[return-value]


async def _try_write(write, frame: frames.Frame) -> None:
    try:
        await write(frame)
    except Exception:
        pass


async def _close(stream: Any) -> None:
    try:
        with trio.move_on_after(1):
            await stream.close()
    except Exception:
        pass


# ======================================================================= client


class IntentClient:
    def __init__(self, host: Any, my_peer_id: str, limits: Limits | None = None) -> None:
        self.host = host
        self.my_peer_id = my_peer_id
        self.limits = limits or Limits()
        self._pool: dict[str, list[tuple[Any, float]]] = {}
        self.stats = {"streams_opened": 0, "streams_reused": 0}

    async def _open(self, peer_id: str) -> Any:
        self.stats["streams_opened"] += 1
        return await self.host.new_stream(ID.from_base58(peer_id), [TProtocol(PROTOCOL)])

    async def _take(self, peer_id: str) -> Any | None:
        pool = self._pool.get(peer_id)
        now = time.monotonic()
        while pool:
            stream, since = pool.pop()
            if now - since < self.limits.pool_idle:
                self.stats["streams_reused"] += 1
                return stream
            await _close(stream)  # idle too long: the server may be about to drop it
        return None

    def _give_back(self, peer_id: str, stream: Any) -> bool:
        pool = self._pool.setdefault(peer_id, [])
        if len(pool) >= self.limits.pool_size:
            return False
        pool.append((stream, time.monotonic()))
        return True

    def forget(self, peer_id: str) -> None:
        """Drop pooled streams (after a disconnect)."""
        self._pool.pop(peer_id, None)

    async def reset_pooled(self, peer_id: str) -> None:
        """Reset the idle pooled streams to a peer (its connection is about to be replaced, e.g.
        a relayed one after a hole punch: federation/holepunch.py); new requests open fresh ones."""
        for stream, _ in self._pool.pop(peer_id, None) or []:
            await reset_stream(stream)

    async def close_all(self) -> None:
        pools, self._pool = self._pool, {}
        for streams in pools.values():
            for s, _ in streams:
                await reset_stream(s)

    async def _exchange_first(self, peer_id: str, frame: frames.Frame) -> tuple[Any, frames.Frame, bytes]:
        """Send the first frame, read the first answer; retry once on a fresh stream if a
        pooled one turns out to be dead before the peer answered anything."""
        lim = self.limits
        for attempt in range(2):
            stream = await self._take(peer_id) if attempt == 0 else None
            reused = stream is not None
            if stream is None:
                try:
                    stream = await self._open(peer_id)
                except Exception as exc:
                    raise IntentFailed("disconnected", f"cannot open stream: {type(exc).__name__}: {exc}"[:300]) from None
            try:
                await write_frame(stream, frame, max_frame=lim.max_frame, timeout=lim.write_timeout)
                first, raw = await read_frame(stream, max_frame=lim.max_frame, timeout=lim.frame_timeout)
                return stream, first, raw
            except FrameError as exc:
                await reset_stream(stream)
                raise IntentFailed("protocol", f"bad frame from worker: {exc}") from None
            except trio.TooSlowError:
                await reset_stream(stream)
                raise IntentFailed("timeout", "no answer from worker") from None
            except trio.Cancelled:
                await reset_stream(stream)
                raise
            except Exception as exc:
                await reset_stream(stream)
                if reused:
                    continue
                raise IntentFailed("disconnected", f"{type(exc).__name__}: {exc}"[:300]) from None
        raise IntentFailed("disconnected", "stream failed")  # pragma: no cover

    async def ping(self, peer_id: str, timeout: float = 5.0) -> float:
        """RTT in ms through the intent protocol (reuses a pooled stream)."""
        rid = new_request_id()
        t0 = time.perf_counter()
        with trio.move_on_after(timeout) as scope:
            stream, first, _ = await self._exchange_first(peer_id, frames.Ping(id=rid))
            if not isinstance(first, frames.Pong) or first.id != rid:
                await reset_stream(stream)
                raise IntentFailed("protocol", f"expected pong, got {_tag(first)}")
            if not self._give_back(peer_id, stream):
                await _close(stream)
            return (time.perf_counter() - t0) * 1000
        raise IntentFailed("timeout", f"ping timed out after {timeout}s")

    async def request(self, peer_id: str, request: dict, on_event: OnEvent | None, timeout: float) -> dict:
        """Run one request on `peer_id`; the result as a dict with `price` and `peer_id` added (and
        `receipt`, the worker's signed ledger receipt bytes, when it sent one)."""
        try:
            req = frames.from_dict({**request, "type": "request", "id": request.get("id") or new_request_id()})
        except FrameError as exc:
            raise IntentFailed("bad_request", str(exc)) from None
        assert isinstance(req, frames.Request)
        rid = req.id
        lim = self.limits
        stream = None
        clean = False
        deadline = trio.current_time() + timeout
        try:
            with trio.move_on_at(deadline):
                stream, frame, _ = await self._exchange_first(peer_id, req)
                price = None
                while True:
                    if frame.id != rid:
                        raise IntentFailed("protocol", "frame for another request id")
                    if isinstance(frame, frames.Error):
                        clean = True
                        raise IntentFailed(frame.code, frame.message, frame.retryable, frame.price)
                    if price is None:
                        if not isinstance(frame, frames.Accepted):
                            raise IntentFailed("protocol", f"expected accepted, got {_tag(frame)}")
                        price = frame.price
                        if req.max_price is not None and price > req.max_price:
                            raise IntentFailed("price", f"worker price {price} > max_price {req.max_price}")
                        if on_event is not None:
                            await on_event(frames.to_dict(frame))
                    elif isinstance(frame, frames.Result):
                        clean = True
                        out = frames.to_dict(frame)
                        out["price"] = price
                        out["peer_id"] = peer_id
                        return out
                    elif isinstance(frame, (frames.Chunk, frames.Progress)):
                        if on_event is not None:
                            await on_event(frames.to_dict(frame))
                    else:
                        raise IntentFailed("protocol", f"unexpected frame {_tag(frame)}")
                    frame, _ = await read_frame(stream, max_frame=lim.max_frame, timeout=lim.frame_timeout)
            raise IntentFailed("timeout", f"no result within {timeout}s")
        except FrameError as exc:
            raise IntentFailed("protocol", f"bad frame from worker: {exc}") from None
        except trio.TooSlowError:
            raise IntentFailed("timeout", f"worker silent for {lim.frame_timeout}s") from None
        except StreamClosed:
            raise IntentFailed("disconnected", "worker closed the stream mid-job") from None
        except IntentFailed:
            raise
        except trio.Cancelled:
            raise
        except Exception as exc:
            if on_event is not None and not _is_net_error(exc):
                raise  # the caller's own on_event failed: not a worker problem
            raise IntentFailed("disconnected", f"{type(exc).__name__}: {exc}"[:300]) from None
        finally:
            if stream is not None:
                if clean and self._give_back(peer_id, stream):
                    pass
                else:
                    with trio.CancelScope(shield=True):
                        await (_close(stream) if clean else reset_stream(stream))


def _is_net_error(exc: Exception) -> bool:
    mod = type(exc).__module__ or ""
    return mod.startswith("libp2p") or isinstance(exc, (OSError, trio.BrokenResourceError, trio.ClosedResourceError))
