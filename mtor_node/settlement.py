"""Settlement that needs no one to remember it, in the spirit of Swarm's SWAP accounting.

Per-peer balances are the ledger's `owed()` (pays - earns -/+ settlements). With settlement on
(`ledger.settlement`: "auto" = on in the public grid realm, off in private realms, which keep
authority grants and may run with no chain at all):

- payer: when what this node owes a peer reaches `ledger.payment_threshold`, the node sends ONE
  SPL TransferChecked of the whole net amount (ledger/settlement.py: idempotent, the signed
  transaction is stored before it leaves), retried with exponential back-off (stamina), and then
  tells the peer the transaction signature over `/mtor/msg/1` ("settle").
- worker: records the settlement only after it finds the transaction confirmed on chain and
  checks it (program, mint, decimals, amount, payer, payee); a replay is refused. Before serving,
  it refuses a payer whose unsettled debt would pass `ledger.disconnect_threshold` with a
  `credit` error naming the amount and how to settle (network.py).

Without a chain client (air-gapped) or a mint, the settler says why and does nothing; the
worker's disconnect threshold still holds, so unbacked credit stays bounded.
"""

from __future__ import annotations

import logging

import stamina
import trio

from . import onchain as chain_mod
from .identity import peer_id_from_pubkey, pubkey_from_peer_id

log = logging.getLogger("mtor.settlement")

CHECK_S = 5.0  # a look at what is owed at least this often (and after every pay)
BACKING_TTL_S = 60.0  # a payer's on-chain $9000 balance is looked up at most this often
BACKING_TIMEOUT_S = 3.0  # and never holds a job longer than this (no answer: no cap, said once)
BACKING_CACHE = 4096  # payers remembered (oldest forgotten first)
RENOTIFY = 32  # settle-out entries re-announced to their payee at start (idempotent: replays are refused)
SETTLE_ATTEMPTS = 6  # back-off 0.5 s .. 30 s between them
TX_TIMEOUT_S = 90.0


def settlement_on(cfg) -> bool:
    mode = cfg["ledger.settlement"]
    if mode == "auto":
        return cfg["p2p.realm"] == "grid" and not cfg["p2p.realm_secret"]
    return mode == "on"


def credit_limit(cfg) -> tuple[int, bool]:
    """(the most a payer may owe this worker, whether unsettled debt counts)."""
    if settlement_on(cfg):
        return min(cfg["ledger.credit_limit"], cfg["ledger.disconnect_threshold"]), True
    return cfg["ledger.credit_limit"], False


class Settler:
    def __init__(self, network):
        self.network = network
        self.node = network.node
        cfg = self.node.config
        self.on = settlement_on(cfg) and self.node.ledger is not None
        self.threshold = cfg["ledger.payment_threshold"]
        self.client = None
        self.mint: str | None = None
        self.why_not: str | None = None
        self._kick = trio.Event()
        self._busy: dict[bytes, trio.Event] = {}  # peer -> set when its settlement in progress ends
        self._backing: dict[bytes, tuple[float, int]] = {}  # payer -> (when, $9000 on chain, micro-tokens)
        self._program = None  # the mint's token program, read from the chain once
        self._backing_unknown_said = False
        self.stats = {"settled": 0, "settled_amount": 0, "failed": 0, "received": 0, "refused": 0}

    def kick(self) -> None:
        """A pay happened: look at the balances now."""
        self._kick.set()

    def _open(self) -> bool:
        cfg = self.node.config
        if not self.on:
            self.why_not = "settlement is off (ledger.settlement, or a private realm)"
            return False
        why = chain_mod.chain_unavailable(cfg, anchoring=False)
        if why:
            self.why_not = why
            return False
        try:
            self.mint = chain_mod.settlement_mint(cfg)
            self.client = chain_mod.make_chain_client(cfg, anchoring=False)
        except ValueError as e:
            self.why_not = str(e)
            return False
        return True

    async def run(self) -> None:
        if not self._open():
            log.info("automatic settlement not running: %s", self.why_not)
            return
        try:
            await self._renotify()
            while True:
                with trio.move_on_after(CHECK_S):
                    await self._kick.wait()
                self._kick = trio.Event()
                await self.settle_due()
        finally:
            with trio.CancelScope(shield=True):
                await self.client.aclose()

    async def settle_due(self) -> None:
        """One transaction per peer whose debt passed the payment threshold."""
        owed = self.node.ledger.owed()  # on the loop's thread, like every write (ChainStore.reading)
        from ledger.settlement import pending_out

        pending = pending_out(self.node.ledger.store)
        for peer, amount in owed.items():
            if amount >= self.threshold or peer in pending:
                await self.settle_peer(peer)

    async def before_paying(self, peer: bytes, timeout_s: float = 30.0) -> None:
        """Back-pressure: a payer that owes a peer two payment thresholds or more waits (bounded)
        for the settlement in progress, so it does not run up debt faster than it settles and
        meet the worker's disconnect threshold."""
        busy = self._busy.get(peer)
        if busy is None or self.node.ledger.owed().get(peer, 0) < 2 * self.threshold:
            return
        with trio.move_on_after(timeout_s):
            await busy.wait()

    async def settle_peer(self, peer: bytes) -> None:
        done = self._busy[peer] = trio.Event()
        try:
            await self._settle_peer(peer)
        finally:
            del self._busy[peer]
            done.set()

    async def _settle_peer(self, peer: bytes) -> None:
        from ledger.errors import AnchorError, SettlementError

        led = self.node.ledger
        try:
            async for attempt in stamina.retry_context(on=(SettlementError, AnchorError, OSError, trio.TooSlowError),
                                                       attempts=SETTLE_ATTEMPTS, wait_initial=0.5, wait_max=30.0,
                                                       timeout=None):
                with attempt:
                    with trio.fail_after(TX_TIMEOUT_S):
                        entry = await led.settle(self.client, peer, None, self.mint)
        except Exception as e:  # every attempt failed: the next threshold check tries again
            self.stats["failed"] += 1
            log.warning("settlement with %s failed after %d attempts: %s (does %s hold SOL for fees and "
                        "$9000 of mint %s?)", peer_id_from_pubkey(peer), SETTLE_ATTEMPTS, e, led.address, self.mint)
            return
        self.stats["settled"] += 1
        self.stats["settled_amount"] += entry.body["amount"]
        log.info("settled %d micro-tokens with %s: %s", entry.body["amount"], peer_id_from_pubkey(peer), entry.body["tx"])
        await self.notify(entry)

    async def notify(self, entry) -> None:
        """Tell the payee which transaction settled; it checks it on chain itself."""
        from federation.messages import MessageFailed

        body = {"tx": entry.body["tx"], "amount": entry.body["amount"], "mint": entry.body["mint"]}
        peer_id = peer_id_from_pubkey(entry.body["peer"])
        try:
            async for attempt in stamina.retry_context(on=MessageFailed, attempts=4, wait_initial=0.5, wait_max=8.0,
                                                       timeout=None):
                with attempt:
                    try:
                        await self.network.messenger.request(peer_id, "settle", body)
                    except MessageFailed as e:
                        if e.code in ("ReplayError", "SettlementError", "no_ledger", "bad_settlement"):
                            log.info("payee %s: %s", peer_id, e.message)
                            return
                        raise
        except MessageFailed as e:
            log.info("could not tell %s about settlement %s (it will be told again at restart): %s",
                     peer_id, body["tx"], e.message)

    async def _renotify(self) -> None:
        led = self.node.ledger
        outs = [e for e in led.entries(led.pubkey) if e.kind == "settle" and e.body["dir"] == "out"][-RENOTIFY:]
        for e in outs:
            self.network._nursery.start_soon(self.notify, e)

    # ---- worker side ---------------------------------------------------------------------------

    async def payer_backing(self, peer: bytes) -> int | None:
        """What a payer holds of the settlement mint on chain (micro-tokens: the $9000 mint has 6
        decimals), so that on the grid a worker extends no more credit than is backed by tokens
        (docs/ledger.md "Settlement"). None when no chain is reachable: then only the disconnect
        threshold bounds the credit."""
        if self.client is None or self.mint is None:
            return None
        now = trio.current_time()
        cached = self._backing.get(peer)
        if cached is not None and now - cached[0] < BACKING_TTL_S:
            return cached[1]
        from solders.pubkey import Pubkey

        from ledger.settlement import mint_info

        try:
            with trio.fail_after(BACKING_TIMEOUT_S):
                if self._program is None:
                    self._program = (await mint_info(self.client, self.mint)).program
                held = await self.client.token_balance(Pubkey.from_bytes(peer), Pubkey.from_string(self.mint), self._program)
        except Exception as e:  # an RPC that does not answer must not stop the work: no cap then
            if not self._backing_unknown_said:
                self._backing_unknown_said = True
                log.warning("cannot read payers' $9000 balances on chain (%s): credit is bounded by "
                            "ledger.disconnect_threshold only", e)
            return None
        self._backing.pop(peer, None)
        self._backing[peer] = (now, held)
        while len(self._backing) > BACKING_CACHE:
            self._backing.pop(next(iter(self._backing)))
        return held

    async def on_settle(self, peer_id: str, body: dict) -> dict:
        from federation.messages import MessageFailed
        from ledger.errors import LedgerError

        if self.node.ledger is None:
            raise MessageFailed("no_ledger", "this node keeps no ledger")
        if self.client is None:
            raise MessageFailed("bad_settlement", f"this node cannot check settlements: {self.why_not}")
        tx, amount, mint = body.get("tx"), body.get("amount"), body.get("mint")
        if not isinstance(tx, str) or not 32 <= len(tx) <= 128 or type(amount) is not int or not isinstance(mint, str):
            raise MessageFailed("bad_settlement", "settle needs tx (a signature), amount (micro-tokens) and mint")
        if mint != self.mint:
            self.stats["refused"] += 1
            raise MessageFailed("bad_settlement", f"this node settles in mint {self.mint}, not {mint[:60]}")
        try:
            with trio.fail_after(TX_TIMEOUT_S):
                e = await self.node.ledger.record_settlement_in(self.client, tx, pubkey_from_peer_id(peer_id), amount, mint)
        except (LedgerError, ValueError) as exc:
            self.stats["refused"] += 1
            raise MessageFailed(type(exc).__name__, str(exc)[:500]) from None
        self.stats["received"] += 1
        return {"seq": e.seq}

    def status(self) -> dict:
        return {"on": self.on, "running": self.client is not None, "why_not": None if self.client else self.why_not,
                "mint": self.mint, "payment_threshold": self.threshold,
                "disconnect_threshold": self.node.config["ledger.disconnect_threshold"], **self.stats}
