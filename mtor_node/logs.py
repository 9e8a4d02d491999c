"""Logging that lasts: the console, a rotating file in the data dir's logs/, optionally as JSON lines,
and an in-memory ring of recent records for the sysop's live log console.

`setup()` is called once by `mtor-node start` after the config is read (logs.max_bytes,
logs.backup_count). Records are plain `logging` records everywhere; only the formatter differs.
"""

from __future__ import annotations

import collections
import json
import logging
import logging.handlers
import threading
import time
from pathlib import Path

LOG_NAME = "mtor-node.log"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RING_SIZE = 2000  # records kept for the live console
NOISY = ("httpx", "hypercorn", "multiaddr", "libp2p")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: t (unix seconds), time (ISO 8601 UTC), level, logger, msg, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"t": round(record.created, 3),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class Ring(logging.Handler):
    """The newest records as small dicts, each with a sequence number, for `recent()` and followers."""

    def __init__(self, size: int = RING_SIZE):
        super().__init__(logging.DEBUG)
        self.records: collections.deque[dict] = collections.deque(maxlen=size)
        self.seq = 0
        self.lock_ = threading.Lock()  # records come from worker threads too

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # a bad %-format in someone's log call must not take logging down
            msg = str(record.msg)
        with self.lock_:
            self.seq += 1
            self.records.append({"seq": self.seq, "t": round(record.created, 3), "level": record.levelname,
                                 "levelno": record.levelno, "logger": record.name, "msg": msg[:4000]})

    def recent(self, *, after: int = 0, level: str | int = "DEBUG", search: str = "", limit: int = 200) -> list[dict]:
        levelno = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
        if not isinstance(levelno, int):
            raise ValueError(f"unknown level {level!r}; one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        needle = search.lower()
        with self.lock_:
            rows = [r for r in self.records if r["seq"] > after and r["levelno"] >= levelno
                    and (not needle or needle in r["msg"].lower() or needle in r["logger"].lower())]
        return rows[-max(1, min(limit, RING_SIZE)):]


RING = Ring()


def setup(data_dir: Path, *, max_bytes: int = 10 * 2**20, backup_count: int = 5, fmt: str = "text",
          verbose: bool = False) -> Path:
    """Console + logs/mtor-node.log (rotated at max_bytes, backup_count kept) + the ring. Returns the file."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: one of text, json")
    logs = Path(data_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT, datefmt="%H:%M:%S")
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_mtor", False):  # a second setup (tests) replaces ours, never others'
            root.removeHandler(h)
            if h is not RING:
                h.close()
    console = logging.StreamHandler()
    path = logs / LOG_NAME
    # backupCount 0 would mean "grow forever" to RotatingFileHandler: keep at least the file itself bounded
    rotating = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=max(1, backup_count),
                                                    encoding="utf-8")
    if fmt == "json":
        file_fmt = formatter
    else:
        file_fmt = logging.Formatter(TEXT_FORMAT.replace("%(asctime)s", "%(asctime)s.%(msecs)03d"), datefmt="%Y-%m-%d %H:%M:%S")
    console.setFormatter(formatter)
    rotating.setFormatter(file_fmt)
    for h in (console, rotating, RING):
        h._mtor = True
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path
