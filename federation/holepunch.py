"""Hole punching (placeholder until implemented): records why no attempt was made."""

from __future__ import annotations

import time


async def hole_punch(reach, peer_id: str, *, initiator: bool) -> None:
    reach.holepunch[peer_id] = {"result": "stayed-relayed", "reason": "hole punching not implemented yet",
                                "at": time.time()}
