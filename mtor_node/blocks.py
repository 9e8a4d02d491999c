"""Sysop peer blocks that survive a restart: a small table in the node's mtor.db.

User bans already live in the store's users table; peer blocks live in the federation's peer
table, in memory. This module keeps the sysop's blocks in SQLite (its own schema version through
store.migrate) and applies them to the federation when the p2p layer starts.
"""

from __future__ import annotations

import sqlite3
import time

from .store import migrate

MIGRATIONS = ["CREATE TABLE peer_blocks (peer_id TEXT PRIMARY KEY, created REAL NOT NULL)"]
MAX_BLOCKS = 100_000  # a sysop blocks a handful; this only bounds a runaway script


class PeerBlocks:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        migrate(conn, "peer_blocks", MIGRATIONS)

    def set(self, peer_id: str, blocked: bool) -> None:
        if blocked:
            n = self.conn.execute("SELECT COUNT(*) FROM peer_blocks").fetchone()[0]
            if n >= MAX_BLOCKS:
                raise ValueError(f"at most {MAX_BLOCKS} peers can be blocked")
            self.conn.execute("INSERT OR IGNORE INTO peer_blocks VALUES (?, ?)", (peer_id, time.time()))
        else:
            self.conn.execute("DELETE FROM peer_blocks WHERE peer_id=?", (peer_id,))

    def all(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT peer_id FROM peer_blocks ORDER BY created")]

    def apply(self, federation) -> int:
        """Block every saved peer in a freshly started federation; returns how many."""
        ids = self.all()
        for peer_id in ids:
            federation.block(peer_id)
        return len(ids)
