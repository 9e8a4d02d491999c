"""Logs a person can read: repeated network warnings become one line per cause per window.

A node that cannot reach its bootstrap peers, or whose peers reset DHT streams, would otherwise
log the same warning many times a minute (py-libp2p alone: ~35 empty "Failed to read DHT
message from stream: " lines a minute per realm node). `RepeatFilter` lets the first record of a
cause through, drops the repeats for `window_s` seconds, and puts the count of dropped ones on
the next line of that cause: "... (37 more like this in the last 60 s)".

A cause is (logger, level, message template), so "no transport found for %s" is one cause
whatever the address. Only WARNING and above from the network's loggers are touched (libp2p,
multiaddr, federation, mtor.network); everything else passes unchanged. An exception argument
whose text is empty is shown by its type, so no line ends in ": ".

py-libp2p's own records are routed to the daemon's handlers (its import leaves them going to
Python's last-resort handler: bare lines without time or logger name).

The window is `MTOR_LOG_REPEAT_WINDOW_S` (default 60): tests shorten it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict

NET_LOGGERS = ("libp2p", "multiaddr", "federation", "mtor.network")
DEFAULT_WINDOW_S = 60.0
MAX_CAUSES = 512  # distinct causes tracked (oldest forgotten first): bounded memory
# py-libp2p formats many messages with f-strings: peer ids, addresses and numbers do not make a new cause
_VARIABLE = re.compile(r"(12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{20,}|/(ip4|ip6|dns4|dns6|dnsaddr)/\S+|\d+")


def window_from_env() -> float:
    try:
        w = float(os.environ.get("MTOR_LOG_REPEAT_WINDOW_S", DEFAULT_WINDOW_S))
    except ValueError:
        return DEFAULT_WINDOW_S
    return w if w > 0 else DEFAULT_WINDOW_S


class RepeatFilter(logging.Filter):
    def __init__(self, window_s: float | None = None, *, clock=time.monotonic,
                 loggers: tuple[str, ...] = NET_LOGGERS) -> None:
        super().__init__()
        self.window_s = window_s if window_s is not None else window_from_env()
        self.clock = clock
        self.loggers = loggers
        self._causes: OrderedDict[tuple, list] = OrderedDict()  # cause -> [window start, dropped]
        self.dropped = 0

    def _ours(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not self._ours(record.name):
            return True
        keep = getattr(record, "_mtor_keep", None)  # one decision per record, however many handlers
        if keep is None:
            keep = record._mtor_keep = self._decide(record)
        return keep

    def _decide(self, record: logging.LogRecord) -> bool:
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        cause = (record.name, record.levelno, _VARIABLE.sub("#", str(record.msg)[:300]), exc_type)
        now = self.clock()
        st = self._causes.get(cause)
        if st is not None and now - st[0] < self.window_s:
            st[1] += 1
            self.dropped += 1
            return False
        dropped = st[1] if st is not None else 0
        self._causes[cause] = [now, 0]
        self._causes.move_to_end(cause)
        while len(self._causes) > MAX_CAUSES:
            self._causes.popitem(last=False)
        self._readable(record)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like this in the last {self.window_s:.0f} s)"
        return True

    @staticmethod
    def _readable(record: logging.LogRecord) -> None:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(type(a).__name__ if isinstance(a, BaseException) and not str(a) else a
                                for a in record.args)


_installed: RepeatFilter | None = None


def install(window_s: float | None = None) -> RepeatFilter:
    """Put one shared RepeatFilter on every handler of the root logger (idempotent). Called when
    the federation starts, after the daemon configured its handlers."""
    global _installed
    lp = logging.getLogger("libp2p")
    if not lp.handlers and not os.environ.get("LIBP2P_DEBUG"):
        # py-libp2p's import sets propagate = False with no handler, so its warnings went to
        # logging.lastResort: bare lines on stderr, no time, no filter. Send them to ours.
        lp.propagate = True
        # its auto-connector forces INFO on its own logger ("initiating 108 new dials" at start)
        logging.getLogger("libp2p.network.auto_connector").setLevel(logging.WARNING)
    if _installed is None:
        _installed = RepeatFilter(window_s)
    elif window_s is not None:
        _installed.window_s = window_s
    for h in logging.getLogger().handlers:
        if _installed not in h.filters:
            h.addFilter(_installed)
    return _installed
