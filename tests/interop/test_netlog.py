"""The repeat filter (federation/netlog.py) over a simulated minute of network warnings, with an
injected clock: py-libp2p's ~35 empty "Failed to read DHT message from stream: " a minute,
a dial error per bootstrap round, and a line from elsewhere that must pass untouched."""

from __future__ import annotations

import logging

from federation.netlog import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    lg = logging.getLogger(name)
    lg.handlers[:] = [handler]
    lg.propagate = False
    lg.setLevel(logging.DEBUG)
    return lg


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def test_a_minute_of_spam_is_one_line_per_cause_with_the_count_on_the_next():
    clock = Clock()
    flt = RepeatFilter(60.0, clock=clock)
    out, second = Lines(), Lines()
    for h in (out, second):  # one shared filter on two handlers: one decision per record
        h.addFilter(flt)
    dht = _logger("libp2p.kad_dht.kad_dht.t", out)
    dht.addHandler(second)
    tcp = _logger("libp2p.transport.tcp.tcp.t", out)
    ui = _logger("mtor.ui.t", out)
    for step in range(120):  # two minutes, a record every 0.5-1.7 s
        clock.t = step * 1.0
        if step % 2 == 0:
            dht.warning("Failed to read DHT message from stream: %s", Exception())
        if step % 3 == 0:
            tcp.error("Failed to open TCP stream: all attempts to connect to 127.0.0.1:%d failed", 40000 + step)
        if step % 10 == 0:
            ui.warning("not a network line %d", step)
    dht_lines = [line for line in out.lines if "DHT message" in line]
    tcp_lines = [line for line in out.lines if "TCP stream" in line]
    assert len(dht_lines) == 2 and len(tcp_lines) == 2, out.lines  # 2 minutes: one line per cause per minute
    assert dht_lines[0].endswith("stream: Exception")  # an empty exception is named, the line does not end in ": "
    assert "(29 more like this in the last 60 s)" in dht_lines[1]
    assert "(19 more like this in the last 60 s)" in tcp_lines[1]
    assert len([line for line in out.lines if "not a network line" in line]) == 12  # others untouched
    assert second.lines == dht_lines  # the other handler saw the same decisions and the same text
    assert flt.dropped == 58 + 38
