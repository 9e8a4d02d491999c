"""The embed kind over the grid: a broker with no embedding model routes it to a worker in a paid
realm, pays from the units the quote counted (input tokens, federation/kinds.py), never above it."""

from __future__ import annotations

from contextlib import AsyncExitStack

from federation.kinds import KINDS
from federation.pricing import PriceTable
from mtor_node.intents import Intent
from tests.test_paid_kinds import PRICES, run, start


async def test_embed_is_routed_and_charged(tmp_path):
    prices = {**PRICES, "embed": 400}
    async with AsyncExitStack() as stack:
        broker, (worker,) = await start(stack, tmp_path, prices=prices)
        intent = Intent(kind="embed", texts=["hello world", "grüße"], user="alice")
        intent.validate()
        quote = broker.network.router.quote(intent)
        assert quote["ok"] and quote["peer"] == worker.peer_id, quote
        final = await run(broker, intent)
        assert final["type"] == "result" and final["peer"] == worker.peer_id, final
        assert len(final["embeddings"]) == 2 and all(len(v) == 8 for v in final["embeddings"])  # echo's vectors
        est = KINDS["embed"].estimate(intent.params, intent.to_dict())
        assert est == len("hello world") + 2 + len("grüße".encode()) + 2
        assert final["units"] == est and final["cost"] == quote["price"] == PriceTable(prices).price("embed", est)
