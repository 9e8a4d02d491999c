"""The federation's own network errors, and the one place py-libp2p's are mapped to them.

Modelled on httpcore's `map_exceptions`: code that calls into py-libp2p (dial, open a stream,
read, write, upgrade a raw connection) runs inside `map_libp2p_errors()`, and everything above it
catches `NetError` (or a subclass), never `BaseException` (docs/architecture.md, "Errors").
Cancellation is not an error: `trio.Cancelled` and other BaseExceptions pass through untouched.

py-libp2p 0.8.1 does not keep to its own `BaseLibp2pError`: its internals leak `ValueError`,
`KeyError`, `AttributeError` and nursery exception groups. So any `Exception` raised inside the
boundary is the library failing and becomes a plain `NetError`; the classes below say more when
the cause is known. `str(err)` is "<cause type>: <cause>" so status reasons read as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio
from libp2p.exceptions import BaseLibp2pError, ParseError, ValidationError
from libp2p.io.exceptions import IOException
from libp2p.network.exceptions import SwarmException
from libp2p.protocol_muxer.exceptions import MultiselectClientError, MultiselectError
from libp2p.stream_muxer.exceptions import MuxedConnError, MuxedStreamError

from .wire import FrameError, StreamClosed


class NetError(Exception):
    """A network operation on a peer failed. `cause`: what the library, OS or trio raised."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause

    @property
    def cause_name(self) -> str:
        return type(self.cause).__name__ if self.cause is not None else type(self).__name__


class Unreachable(NetError):
    """Could not connect: refused, no route, every dial failed."""


class StreamFailed(NetError):
    """A stream could not be opened or negotiated, or broke while in use."""


class ProtocolViolation(NetError):
    """The peer sent something the protocol does not allow (bad frame, bad varint, wrong type)."""


class TimedOut(NetError):
    """A bounded wait ran out (`trio.fail_after` inside the boundary)."""


# first match wins: most specific first
_MAP: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], type[NetError]], ...] = (
    (trio.TooSlowError, TimedOut),
    ((FrameError, ParseError, ValidationError, MultiselectError), ProtocolViolation),
    ((MultiselectClientError, MuxedStreamError, MuxedConnError, IOException, StreamClosed,
      trio.BrokenResourceError, trio.ClosedResourceError, EOFError), StreamFailed),
    ((SwarmException, OSError), Unreachable),
    (BaseLibp2pError, NetError),
)


def _leaf(exc: BaseException) -> BaseException:
    """The first non-group exception (py-libp2p wraps errors in nursery groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def to_net_error(exc: Exception) -> NetError:
    """The NetError that stands for `exc` (itself when it already is one)."""
    if isinstance(exc, NetError):
        return exc
    leaf = _leaf(exc)
    if isinstance(leaf, NetError):
        return leaf
    message = f"{type(leaf).__name__}: {leaf}"
    for source, target in _MAP:
        if isinstance(leaf, source):
            return target(message, leaf)
    return NetError(message, leaf)


@contextmanager
def map_libp2p_errors() -> Iterator[None]:
    """Run a block that calls py-libp2p; any Exception leaves it as a NetError (from the cause)."""
    try:
        yield
    except NetError:
        raise
    except Exception as exc:  # the library's, the OS's or trio's: see the module docstring
        raise to_net_error(exc) from exc
