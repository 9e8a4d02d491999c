"""The node's SQLite store (WAL): users and query history, with schema versioning.

Other components (the ledger) keep their own tables in the same file with their own versions.
Writes are small and commit at once; WAL keeps readers and the one writer out of each other's way.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

DB_NAME = "mtor.db"
COMPONENT = "node"

# Each step takes the schema from version i to i+1. Never edit a released step; append a new one.
MIGRATIONS = [
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        nickname TEXT NOT NULL DEFAULT '',
        banned INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE queries (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        peer TEXT NOT NULL DEFAULT '',
        duration_ms INTEGER NOT NULL DEFAULT 0,
        cost INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE INDEX queries_user_created ON queries(user, created);
    """,
    """
    CREATE TABLE pay_delivered (
        job TEXT PRIMARY KEY,
        at REAL NOT NULL
    );
    """,
]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


def migrate(conn: sqlite3.Connection, component: str, migrations: list[str]) -> int:
    """Bring `component`'s tables to the newest version; refuse a database from a newer release."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_versions WHERE component=?", (component,)).fetchone()
    version = row[0] if row else 0
    if version > len(migrations):
        raise RuntimeError(f"the database has {component} schema v{version}, newer than this mtor-node knows (v{len(migrations)}); upgrade mtor-node")
    for i in range(version, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # statement by statement: sqlite3's executescript would COMMIT the open transaction first
            for stmt in filter(str.strip, migrations[i].split(";")):
                conn.execute(stmt)
            conn.execute("INSERT OR REPLACE INTO schema_versions VALUES (?, ?)", (component, i + 1))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(migrations)


# The sysop's records ("most users at once"): its own component, so the node's schema version is untouched.
PEAKS = ["CREATE TABLE sysop_peaks (key TEXT PRIMARY KEY, value INTEGER NOT NULL, at REAL NOT NULL)"]


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.conn = connect(path)
        migrate(self.conn, COMPONENT, MIGRATIONS)
        self._peaks_ready = False

    def close(self) -> None:
        # A checkpoint folds the WAL into the main file so a copied mtor.db is complete.
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()

    # users
    def touch_user(self, user: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO users(id, created) VALUES (?, ?)", (user, time.time()))

    def set_nickname(self, user: str, nickname: str) -> None:
        self.touch_user(user)
        self.conn.execute("UPDATE users SET nickname=? WHERE id=?", (nickname, user))

    def set_banned(self, user: str, banned: bool) -> None:
        self.touch_user(user)
        self.conn.execute("UPDATE users SET banned=? WHERE id=?", (int(banned), user))

    def is_banned(self, user: str) -> bool:
        row = self.conn.execute("SELECT banned FROM users WHERE id=?", (user,)).fetchone()
        return bool(row and row[0])

    def users(self) -> list[dict]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM users ORDER BY created")]

    # queries
    def record_query(self, *, id: str, user: str, kind: str, model: str, prompt: str, status: str,
                     error: str = "", peer: str = "", duration_ms: int = 0, cost: int = 0) -> None:
        self.touch_user(user)
        self.conn.execute(
            # never over another row: an id that exists already (a peer's choice) keeps the first row
            "INSERT INTO queries(id, user, kind, model, prompt, status, error, peer, duration_ms, cost, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
            (id, user, kind, model, prompt[:2000], status, error[:500], peer, duration_ms, cost, time.time()),
        )

    def history(self, user: str | None = None, limit: int = 50) -> list[dict]:
        if user is None:
            rows = self.conn.execute("SELECT * FROM queries ORDER BY created DESC LIMIT ?", (limit,))
        else:
            rows = self.conn.execute("SELECT * FROM queries WHERE user=? ORDER BY created DESC LIMIT ?", (user, limit))
        return [dict(r) for r in rows]

    # pay entries the worker has acknowledged (the rest are re-sent after a restart)
    def mark_pay_delivered(self, job: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO pay_delivered VALUES (?, ?)", (job, time.time()))

    def delivered_pays(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT job FROM pay_delivered")}

    def kind_totals(self) -> list[tuple[str, int, int, float | None, int]]:
        """Per kind, lifetime: (kind, queries, done, average ms of the done ones or None, cost)."""
        return [(kind, total, ok or 0, avg_ms, cost or 0) for kind, total, ok, avg_ms, cost in self.conn.execute(
            "SELECT kind, COUNT(*), SUM(status='done'), AVG(CASE WHEN status='done' THEN duration_ms END), SUM(cost) "
            "FROM queries GROUP BY kind ORDER BY kind")]

    def user_totals(self, user: str) -> tuple[int, int]:
        """(queries, cost in micro-tokens) of one user, lifetime."""
        n, cost = self.conn.execute("SELECT COUNT(*), SUM(cost) FROM queries WHERE user=?", (user,)).fetchone()
        return n, cost or 0

    def user_counts(self) -> tuple[int, int]:
        """(users ever seen, users who sent at least one query)."""
        ever = self.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        asked = self.conn.execute("SELECT COUNT(DISTINCT user) FROM queries").fetchone()[0]
        return ever, asked

    # peaks: the highest value a gauge reached, and when
    def note_peak(self, key: str, value: int) -> None:
        self._migrate_peaks()
        self.conn.execute("INSERT INTO sysop_peaks VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                          "value=excluded.value, at=excluded.at WHERE excluded.value > sysop_peaks.value",
                          (key, value, time.time()))

    def peak(self, key: str) -> tuple[int, float] | None:
        """(value, when) of the highest value noted for `key`, or None."""
        self._migrate_peaks()
        row = self.conn.execute("SELECT value, at FROM sysop_peaks WHERE key=?", (key,)).fetchone()
        return (row[0], row[1]) if row else None

    def _migrate_peaks(self) -> None:
        if not self._peaks_ready:
            migrate(self.conn, "sysop_peaks", PEAKS)
            self._peaks_ready = True

    def stats(self) -> dict:
        rows = self.conn.execute("SELECT kind, status, COUNT(*), SUM(duration_ms), SUM(cost) FROM queries GROUP BY kind, status")
        return {"queries": [dict(zip(("kind", "status", "count", "duration_ms", "cost"), r)) for r in rows]}
