"""A LiteSVM-backed Solana JSON-RPC stand-in for tests.

It stands in for a real cluster RPC (mainnet-beta/devnet/a validator), which cannot be reached
from the test machines: an HTTP/1.1 server on 127.0.0.1 (any free port) answering the JSON-RPC
methods solana-py's AsyncClient uses for anchoring and settlement, backed by an in-process
`solders.litesvm.LiteSVM` (real memo v3 and SPL token programs). Answers are built with solders'
own RPC response types (`GetLatestBlockhashResp`, `GetTransactionResp`, ...) so the client parses
exactly what it would parse from a real node.

Runs in a daemon thread (http.server), so it works under any event loop; one lock serialises
access to the LiteSVM instance.

Semantics differ from a cluster in ways the ledger does not depend on: every transaction is
executed (and "finalized") when sent, each one in its own slot; there is no fork or expiry.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetLatestBlockhashResp,
    GetMinimumBalanceForRentExemptionResp,
    GetSignatureStatusesResp,
    GetSlotResp,
    GetTokenAccountBalanceResp,
    GetTransactionResp,
    RequestAirdropResp,
    RpcBlockhash,
    RpcResponseContext,
    RpcSimulateTransactionResult,
    SendTransactionResp,
)
from solders.transaction import Legacy, VersionedTransaction
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    TransactionConfirmationStatus,
    TransactionStatus,
    UiTransactionStatusMeta,
)
from solders.transaction_metadata import FailedTransactionMetadata

SPL_TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None):
        self.code, self.message, self.data = code, message, data


class LiteSVMRpc:
    """The JSON-RPC method implementations over one LiteSVM."""

    def __init__(self, svm: LiteSVM | None = None):
        self.svm = svm or LiteSVM()
        self.lock = threading.Lock()
        # LiteSVM keeps metadata, not transactions: keep what was sent, for getTransaction
        self.txs: dict[str, tuple[VersionedTransaction, int, Any]] = {}
        self.calls: list[str] = []  # method names, in order (tests count transactions with it)

    def ctx(self) -> RpcResponseContext:
        return RpcResponseContext(self.svm.get_clock().slot)

    def handle(self, method: str, params: list) -> str:
        """Return the `result`-bearing JSON (a solders response's to_json())."""
        self.calls.append(method)
        fn = getattr(self, "m_" + method, None)
        if fn is None:
            raise RpcError(-32601, f"Method not found: {method}")
        with self.lock:
            return fn(*params)

    # --- methods ---
    def m_getLatestBlockhash(self, cfg: dict | None = None) -> str:
        slot = self.svm.get_clock().slot
        return GetLatestBlockhashResp(RpcBlockhash(self.svm.latest_blockhash(), slot + 150), self.ctx()).to_json()

    def m_getSlot(self, cfg: dict | None = None) -> str:
        return GetSlotResp(self.svm.get_clock().slot).to_json()

    def m_getBalance(self, pubkey: str, cfg: dict | None = None) -> str:
        return GetBalanceResp(self.svm.get_balance(Pubkey.from_string(pubkey)) or 0, self.ctx()).to_json()

    def m_getAccountInfo(self, pubkey: str, cfg: dict | None = None) -> str:
        acct = self.svm.get_account(Pubkey.from_string(pubkey))
        if acct is not None and acct.lamports == 0:
            acct = None
        if acct is not None:
            acct = Account(acct.lamports, bytes(acct.data), acct.owner, acct.executable, acct.rent_epoch)
        return GetAccountInfoResp(acct, self.ctx()).to_json()

    def m_getMinimumBalanceForRentExemption(self, size: int, cfg: dict | None = None) -> str:
        return GetMinimumBalanceForRentExemptionResp(self.svm.minimum_balance_for_rent_exemption(size)).to_json()

    def m_getTokenAccountBalance(self, pubkey: str, cfg: dict | None = None) -> str:
        acct = self.svm.get_account(Pubkey.from_string(pubkey))
        if acct is None or acct.owner not in (SPL_TOKEN, TOKEN_2022) or len(acct.data) < 165:
            raise RpcError(-32602, "Invalid param: could not find account")
        data = bytes(acct.data)
        mint = self.svm.get_account(Pubkey.from_bytes(data[:32]))
        decimals = bytes(mint.data)[44] if mint is not None else 0
        amount = int.from_bytes(data[64:72], "little")
        ui = f"{amount / 10**decimals}" if decimals else str(amount)
        return GetTokenAccountBalanceResp(UiTokenAmount(amount / 10**decimals, decimals, str(amount), ui),
                                          self.ctx()).to_json()

    def m_requestAirdrop(self, pubkey: str, lamports: int, cfg: dict | None = None) -> str:
        res = self.svm.airdrop(Pubkey.from_string(pubkey), lamports)
        if isinstance(res, FailedTransactionMetadata):
            raise RpcError(-32603, f"airdrop failed: {res.err()}")
        return RequestAirdropResp(res.signature()).to_json()

    def m_sendTransaction(self, tx_b64: str, cfg: dict | None = None) -> str:
        if (cfg or {}).get("encoding", "base58") != "base64":
            raise RpcError(-32602, "only base64 transactions are supported here")
        raw = base64.b64decode(tx_b64)
        try:
            vtx = VersionedTransaction.from_bytes(raw)
        except Exception as exc:
            raise RpcError(-32602, f"invalid transaction: {exc}") from None
        res = self.svm.send_transaction(vtx)
        if isinstance(res, FailedTransactionMetadata):
            sim = RpcSimulateTransactionResult(err=res.err(), logs=res.meta().logs(), accounts=None,
                                               units_consumed=res.meta().compute_units_consumed(),
                                               return_data=None)
            msg = SendTransactionPreflightFailureMessage(
                f"Transaction simulation failed: {res.err()}", sim)
            raise RpcError(-32002, msg.message, json.loads(msg.to_json())["data"])
        slot = self.svm.get_clock().slot
        sig = vtx.signatures[0]
        self.txs[str(sig)] = (vtx, slot, res)
        self.svm.warp_to_slot(slot + 1)  # one transaction per slot; fresh blockhash
        self.svm.expire_blockhash()
        return SendTransactionResp(sig).to_json()

    def m_getSignatureStatuses(self, sigs: list[str], cfg: dict | None = None) -> str:
        out = []
        for s in sigs:
            got = self.txs.get(s)
            out.append(None if got is None else TransactionStatus(
                got[1], None, None, None, TransactionConfirmationStatus.Finalized))
        return GetSignatureStatusesResp(out, self.ctx()).to_json()

    def m_getTransaction(self, sig: str, cfg: dict | None = None) -> str:
        enc = (cfg or {}).get("encoding", "json")
        if enc != "base64":
            raise RpcError(-32602, "this stand-in answers getTransaction in base64 encoding only")
        got = self.txs.get(sig)
        if got is None:
            return GetTransactionResp(None).to_json()
        vtx, slot, meta = got
        ui_meta = UiTransactionStatusMeta(err=None, fee=meta.fee(), pre_balances=[], post_balances=[],
                                          log_messages=meta.logs(),
                                          compute_units_consumed=meta.compute_units_consumed())
        etx = EncodedTransactionWithStatusMeta(vtx, ui_meta, Legacy.Legacy)
        return GetTransactionResp(EncodedConfirmedTransactionWithStatusMeta(slot, etx, None)).to_json()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
    rpc: LiteSVMRpc

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        req_id: Any = None
        try:
            req = json.loads(self.rfile.read(n))
            req_id = req.get("id")
            body = json.loads(self.rpc.handle(req["method"], req.get("params") or []))
            body["id"] = req_id
        except RpcError as e:
            err: dict[str, Any] = {"code": e.code, "message": e.message}
            if e.data is not None:
                err["data"] = e.data
            body = {"jsonrpc": "2.0", "error": err, "id": req_id}
        except Exception as e:  # never kill the server thread
            body = {"jsonrpc": "2.0", "error": {"code": -32603, "message": f"internal: {e}"}, "id": req_id}
        out = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class LiteSVMRpcServer:
    """`with LiteSVMRpcServer() as srv: AsyncClient(srv.url)`; `srv.rpc.svm` is the LiteSVM."""

    def __init__(self, svm: LiteSVM | None = None):
        self.rpc = LiteSVMRpc(svm)
        handler = type("Handler", (_Handler,), {"rpc": self.rpc})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="litesvm-rpc", daemon=True)

    def __enter__(self) -> "LiteSVMRpcServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @property
    def svm(self) -> LiteSVM:
        return self.rpc.svm
