"""The wallet and ledger half of the UI's facade (docs/architecture.md, "The service facade";
the routes in docs/api.md): balance, holds, recent entries, vouchers, verification, anchoring,
export, settlement and the sub-accounts of this broker's users.

Every method reads the ledger through its public methods (the store's lock is theirs), runs
SQLite work in a thread and raises `ServiceError` for refusals. Amounts are integers of
micro-tokens (1 $9000 = 1,000,000).
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any, TypedDict

import trio

from . import onchain as chain_mod
from .onchain import WalletError
from .service_base import NodeParts, ServiceError

if TYPE_CHECKING:
    from ledger import Ledger, VerifyReport

    from .user_accounts import UserAccounts

CHAIN_TIMEOUT_S = 90  # an anchor or settlement transaction not confirmed by then has failed
VERIFY_CHAIN_TIMEOUT_S = 120


class SettleResult(TypedDict, total=False):
    settled: list[dict]
    errors: list[dict]
    mint: str
    note: str


def address_of(key: bytes | None) -> str | None:
    """A ledger key as people read it: a Solana address, or `user:NAME` for a user's sub-account
    (ledger/users.py)."""
    from ledger.keys import address

    if key and bytes(key).startswith(b"user:"):
        return bytes(key).decode("utf-8", "replace")
    return address(key) if key else None


async def _read(led, fn):
    """fn() in a worker thread, holding the ledger store's lock (ChainStore.reading)."""
    def locked():
        with led.store.reading():
            return fn()

    return await trio.to_thread.run_sync(locked)


def jsonable(obj: Any) -> Any:
    """Entry bodies as JSON: bytes as hex (the exact bytes are in `raw`)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    return obj


def ledger_disabled() -> ServiceError:
    return ServiceError("ledger_disabled", "this node runs without a ledger (ledger.enabled = false)", 409)


def _refused(e: WalletError) -> ServiceError:
    return ServiceError(e.code, e.message, e.status)


class WalletService:
    def __init__(self, node: NodeParts):
        self._node = node

    @property
    def enabled(self) -> bool:
        return self._node.ledger is not None

    def _ledger(self) -> Ledger:
        led = self._node.ledger
        if led is None:
            raise ledger_disabled()
        return led

    # ---- reading -----------------------------------------------------------------------------

    async def wallet(self, limit: int) -> dict:
        """Address, balance, holds, the newest `limit` entries and what is owed to each peer."""
        led = self._ledger()

        def read():
            return (led.recent_entries(limit), led.balance(), led.available(), led.holds(), led.owed(), led.head())

        rows, balance, available, holds, owed, head = await _read(led, read)
        recent = [{"seq": r.seq, "kind": r.kind, "time": r.time, "amount": r.amount, "delta": r.delta,
                   "peer": address_of(r.peer), **({"dir": r.dir} if r.dir else {}),
                   **({"job": r.job} if r.kind in ("pay", "earn") and r.job else {}),
                   **({"tx": r.job} if r.kind in ("anchor", "settle", "deposit") and r.job else {})}
                  for r in rows]
        return {
            "address": led.address,
            "peer_id": self._node.peer_id,
            "realm": led.realm,
            "authority": address_of(led.authority),
            "is_authority": chain_mod.is_authority(led),
            "balance": balance,
            "available": available,
            "held": balance - available,
            "holds": [{"job": j, "amount": a} for j, a in sorted(holds.items())],
            "head_seq": head[0],
            "recent": recent,
            "owed": {address_of(p): v for p, v in sorted(owed.items())},
            "unit": "micro-tokens",
        }

    async def export(self) -> tuple[dict, list[dict]]:
        """({author, realm}, our entries each with its canonical bytes in base64), so that they can
        be re-verified elsewhere (docs/ledger.md)."""
        led = self._ledger()

        def rows() -> list[dict]:
            return [{"author": led.address, "seq": e.seq, "kind": e.kind, "time": e.time, "hash": e.hash.hex(),
                     "prev": e.prev.hex(), "body": jsonable(e.body), "raw": base64.b64encode(e.raw).decode()}
                    for e in led.entries(led.pubkey)]

        return {"author": led.address, "realm": led.realm}, await _read(led, rows)

    async def verify(self, on_chain: bool) -> dict:
        """Signatures, the hash chain and anchors; with `on_chain`, the anchors on Solana too."""
        from ledger.verify import verify_anchors_on_chain

        led = self._ledger()
        client = None
        if on_chain:
            cfg = self._node.config
            why = chain_mod.chain_unavailable(cfg, anchoring=False)
            if why:
                raise ServiceError("no_chain", f"cannot check anchors on chain: {why}", 409)
            try:
                client = chain_mod.make_chain_client(cfg, anchoring=False)
            except ValueError as e:
                raise ServiceError("no_chain", f"cannot check anchors on chain: {e}", 409) from None
        rep = await _read(led, led.verify)
        if client is not None:
            try:
                with trio.move_on_after(VERIFY_CHAIN_TIMEOUT_S) as scope:
                    rep = await verify_anchors_on_chain(rep, client)
                if scope.cancelled_caught:
                    rep.add(rep.anchors[-1].seq if rep.anchors else 0,
                            f"timed out checking anchors on chain ({VERIFY_CHAIN_TIMEOUT_S} s)")
            finally:
                await client.aclose()
        return report_json(rep, on_chain)

    # ---- credits -----------------------------------------------------------------------------

    async def grant(self, address: str, amount: int, grant_id: str | None) -> dict:
        """Sysop of the realm authority: a voucher for `address`; applied here when it is ours,
        else sent to the member when it is connected."""
        n = self._node
        try:
            v = chain_mod.issue(n, address, amount, grant_id)
        except WalletError as e:
            raise _refused(e) from None
        out = {"voucher": chain_mod.encode_voucher(v), "id": v.id, "to": address, "amount": v.amount,
               "realm": v.realm, "applied": False, "delivered": False}
        led = self._ledger()
        if v.to == led.pubkey:
            try:
                e = await trio.to_thread.run_sync(chain_mod.redeem, led, v)
            except WalletError as exc:
                raise _refused(exc) from None
            out.update(applied=True, seq=e.seq, balance=led.balance())
        else:
            delivered, why = await chain_mod.deliver(n, v)
            out["delivered"] = delivered
            if why:
                out["note"] = why
        return out

    async def redeem(self, voucher: str) -> dict:
        led = self._ledger()
        try:
            e = await trio.to_thread.run_sync(chain_mod.redeem, led, voucher)
        except WalletError as exc:
            raise _refused(exc) from None
        v = e.body["voucher"]
        return {"credited": v["amount"], "id": v["id"], "seq": e.seq, "balance": led.balance()}

    # ---- the chain ---------------------------------------------------------------------------

    async def anchor(self) -> dict:
        """Anchor the entries written since the last anchor now (Solana memo)."""
        from ledger.errors import AnchorError

        led = self._ledger()
        cfg = self._node.config
        why = chain_mod.chain_unavailable(cfg)
        if why:
            raise ServiceError("no_chain", f"cannot anchor: {why}", 409)
        try:
            client = chain_mod.make_chain_client(cfg)
        except ValueError as e:
            raise ServiceError("no_chain", f"cannot anchor: {e}", 409) from None
        try:
            with trio.fail_after(CHAIN_TIMEOUT_S):
                e = await led.anchor_now(client)
        except trio.TooSlowError:
            raise ServiceError("chain_timeout", f"the anchor transaction was not confirmed within {CHAIN_TIMEOUT_S} s",
                               504) from None
        except AnchorError as exc:
            raise ServiceError("anchor_failed", f"anchoring failed: {exc} (does {led.address} hold SOL for the fee?)",
                               502) from None
        except Exception as exc:  # noqa: BLE001 - the RPC endpoint unreachable or answering nonsense
            raise ServiceError("chain_unreachable", f"the Solana RPC endpoint failed: {type(exc).__name__}: {exc}",
                               502) from None
        finally:
            await client.aclose()
        if e is None:
            return {"anchored": False, "reason": "nothing new to anchor since the last anchor"}
        b = e.body
        return {"anchored": True, "seq": e.seq, "first": b["first"], "last": b["last"], "root": b["root"].hex(),
                "tx": b["tx"], "slot": b["slot"], "cluster": b["cluster"]}

    async def settle(self, peer: object = None, amount: object = None) -> SettleResult:
        """Pay what we owe peers as SPL TransferChecked: every peer, or `peer` (a Solana address)
        for `amount` (default: all we owe it). Failures per peer are in `errors`."""
        from ledger.errors import DecodeError, SettlementError
        from ledger.keys import to_pubkey

        led = self._ledger()
        cfg = self._node.config
        why = chain_mod.chain_unavailable(cfg, anchoring=False)
        if why:
            raise ServiceError("no_chain", f"cannot settle: {why}", 409)
        try:
            mint = chain_mod.settlement_mint(cfg)
        except ValueError as e:
            raise ServiceError("no_mint", f"cannot settle: {e}; set ledger.mint to the $9000 SPL mint address",
                               409) from None
        owed = {p: v for p, v in (await _read(led, led.owed)).items() if v > 0}
        if peer is not None:
            try:
                pk = to_pubkey(peer) if isinstance(peer, str) else None
            except DecodeError:
                pk = None
            if pk is None:
                raise ServiceError("bad_address", "peer must be a Solana address")
            if pk not in owed:
                raise ServiceError("nothing_owed", f"this node owes nothing to {peer}", 409)
            if amount is not None and (type(amount) is not int or not 0 < amount <= owed[pk]):
                raise ServiceError("bad_amount", f"amount must be an integer of 1..{owed[pk]} micro-tokens")
            owed = {pk: amount or owed[pk]}  # type: ignore[dict-item]
        if not owed:
            return {"settled": [], "errors": [], "note": "this node owes nothing to any peer"}
        try:
            client = chain_mod.make_chain_client(cfg, anchoring=False)
        except ValueError as e:
            raise ServiceError("no_chain", f"cannot settle: {e}", 409) from None
        settled: list[dict] = []
        errors: list[dict] = []
        try:
            for pk, amt in owed.items():
                try:
                    with trio.fail_after(CHAIN_TIMEOUT_S):
                        e = await led.settle(client, pk, amt, mint)
                    settled.append({"peer": address_of(pk), "amount": amt, "tx": e.body["tx"], "seq": e.seq})
                except trio.TooSlowError:
                    errors.append({"peer": address_of(pk), "amount": amt,
                                   "error": f"not confirmed within {CHAIN_TIMEOUT_S} s"})
                except SettlementError as exc:
                    errors.append({"peer": address_of(pk), "amount": amt,
                                   "error": f"{exc} (does {led.address} hold SOL for fees and {amt} "
                                            f"micro-tokens of mint {mint}?)"})
                except Exception as exc:  # noqa: BLE001 - RPC unreachable
                    errors.append({"peer": address_of(pk), "amount": amt, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            await client.aclose()
        return {"settled": settled, "errors": errors, "mint": mint}

    # ---- the sub-accounts of this broker's users (mtor_node/user_accounts.py) ----------------

    def _accounts(self) -> UserAccounts:
        self._ledger()
        accts = getattr(self._node.broker, "accounts", None)
        if accts is None:
            raise ServiceError("accounts_off", "user accounts are off on this node (ledger.user_accounts = false, "
                                               "or p2p off): every user spends the node's wallet", 409)
        return accts

    async def user_accounts(self) -> dict:
        accts = self._accounts()
        return {"users": await _read(accts.ledger, accts.all), "demo_grant": accts.demo_grant}

    async def credit_user(self, user: object, amount: object, credit_id: object = None) -> dict:
        from ledger.errors import LedgerError, ReplayError

        accts = self._accounts()
        credit_id = credit_id or f"credit-{base64.b32encode(os.urandom(10)).decode().lower()}"
        if not isinstance(user, str) or not user or type(amount) is not int or not isinstance(credit_id, str):
            raise ServiceError("bad_request", 'send {"user": NAME, "amount": MICROTOKENS, "id"?: STRING}')
        try:
            e = await trio.to_thread.run_sync(accts.credit, user, amount, credit_id)
        except ReplayError as exc:
            raise ServiceError("replay", str(exc), 409) from None
        except LedgerError as exc:
            raise ServiceError("bad_amount", str(exc)) from None
        return {"user": user, "credited": amount, "id": credit_id, "seq": e.seq,
                "balance": await _read(accts.ledger, lambda: accts.balance(user))}


def report_json(rep: VerifyReport, on_chain: bool) -> dict:
    return {"ok": rep.ok, "author": rep.author, "entries": rep.entries, "anchors": len(rep.anchors),
            "chain_checked": on_chain,
            "anchor_txs": [{"seq": a.seq, "tx": a.body["tx"], "first": a.body["first"], "last": a.body["last"]}
                           for a in rep.anchors],
            "problems": [{"author": p.author, "seq": p.seq, "what": p.what, "text": str(p)} for p in rep.problems]}
