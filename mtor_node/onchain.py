"""The daemon's side of the ledger's money paths: which Solana client to use, the anchoring task,
peer id <-> Solana address, and grant vouchers as copyable strings (issue, deliver, redeem).

Chain client choice (`make_chain_client`):
- `p2p.airgap = true`: no chain calls at all, ever (None).
- anchoring is OFF by default (`ledger.anchor = false`): a fresh wallet holds no SOL, and every
  anchor is a transaction whose fee (5,000 lamports) the node's key pays. Turn it on once the
  node's Solana address holds a little SOL. With it off, `make_chain_client(cfg)` is None;
  explicit sysop actions that read the chain or pay fees on purpose (`ledger verify --chain`,
  `wallet settle`) ask with `anchoring=False` and get a client unless airgapped.
- the URL: `ledger.rpc_url` when set, else the public URL of `ledger.cluster`.

Nothing here imports ui; the REST layer (ui/ledger_api.py) and the CLI build on it.
"""

from __future__ import annotations

import base64
import logging
import secrets

import base58
import trio

from .identity import peer_id_from_pubkey, pubkey_from_peer_id

log = logging.getLogger("mtor.chain")

RESTART_S = 30.0  # the anchorer restarts this long after an unexpected failure (RPC down...)
CHECK_S = 5.0  # how often the anchorer looks at what is pending


# --- peer id <-> Solana address ------------------------------------------------------------

def address_from_peer_id(peer_id: str) -> str:
    """The Solana address (base58 of the Ed25519 public key) of a libp2p Ed25519 peer id."""
    return base58.b58encode(pubkey_from_peer_id(peer_id)).decode()


def peer_id_from_address(address: str) -> str:
    """The libp2p peer id of the node whose Solana address (= Ed25519 public key) is `address`."""
    try:
        key = base58.b58decode(address)
    except ValueError:
        raise ValueError(f"not a Solana address (not base58): {address[:60]!r}") from None
    if len(key) != 32:
        raise ValueError(f"not a Solana address (decodes to {len(key)} bytes, not 32): {address[:60]!r}")
    return peer_id_from_pubkey(key)


# --- chain client and anchoring task -------------------------------------------------------

def chain_unavailable(cfg, *, anchoring: bool = True) -> str | None:
    """Why there is no chain client under this config (None when there is one)."""
    if cfg["p2p.airgap"]:
        return "this node is air-gapped (p2p.airgap = true): no Solana calls"
    if anchoring and not cfg["ledger.anchor"]:
        return ("anchoring is off (ledger.anchor = false, the default: a fresh wallet has no SOL for "
                "fees); set ledger.anchor = true once the node's address holds some SOL")
    return None


def cluster_config(cfg):
    from ledger.solana_chain import ClusterConfig

    return ClusterConfig(cluster=cfg["ledger.cluster"], rpc_url=cfg["ledger.rpc_url"] or None,
                         mint=cfg["ledger.mint"] or None,
                         anchor_every_entries=cfg["ledger.anchor_every_entries"],
                         anchor_every_s=cfg["ledger.anchor_every_s"])


def make_chain_client(cfg, *, anchoring: bool = True):
    """A `ledger.solana_chain.RpcChainClient` for this config, or None (airgap; anchoring off
    unless `anchoring=False`). The caller closes it with `await client.aclose()`."""
    if chain_unavailable(cfg, anchoring=anchoring):
        return None
    from ledger.solana_chain import RpcChainClient

    cc = cluster_config(cfg)
    return RpcChainClient(cc.url, cluster="custom" if cc.rpc_url else cc.cluster)


def settlement_mint(cfg) -> str:
    """The SPL mint to settle in; ValueError saying what to configure when there is none."""
    return cluster_config(cfg).mint_address


async def run_chain_tasks(node) -> None:
    """Daemon task (the node starts it in its nursery): anchor the ledger every
    `ledger.anchor_every_entries` entries or `ledger.anchor_every_s` seconds through
    `ledger.solana_chain.run_anchorer`. Returns at once when the ledger is off, anchoring is off
    or the node is air-gapped. RPC failures are logged and the anchorer keeps going."""
    if node.ledger is None:
        return
    reason = chain_unavailable(node.config)
    if reason:
        log.info("ledger anchoring not running: %s", reason)
        return
    from ledger.solana_chain import run_anchorer

    cc = cluster_config(node.config)
    try:
        cc.url
    except ValueError as e:
        log.warning("ledger anchoring not running: %s", e)
        return
    client = make_chain_client(node.config)
    log.info("anchoring the ledger on %s every %d entries or %d s", cc.url, cc.anchor_every_entries,
             cc.anchor_every_s)
    try:
        while True:
            try:
                # run_anchorer retries AnchorError itself; anything else (RPC unreachable, a bad
                # answer) ends it: log, wait, start it again
                await run_anchorer(node.ledger.store, client, cc.anchor_every_entries, cc.anchor_every_s,
                                   check_s=CHECK_S)
            except Exception as e:  # noqa: BLE001 - a chain outage must not end the node
                log.warning("anchoring failed (%s: %s); retrying in %.0f s", type(e).__name__, e, RESTART_S)
                await trio.sleep(RESTART_S)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await client.aclose()


# --- grant vouchers ------------------------------------------------------------------------

class WalletError(Exception):
    """A refusal for the user: `code` for machines, the message for people, `status` for HTTP."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


MAX_VOUCHER_CHARS = 2048


def encode_voucher(voucher) -> str:
    """A voucher as one copyable string: base64url (no padding) of its canonical msgpack bytes."""
    from ledger.encoding import canonical

    return base64.urlsafe_b64encode(canonical(voucher.to_dict())).rstrip(b"=").decode()


def decode_voucher(text: str):
    """The GrantVoucher in a string from `encode_voucher` (signature not checked here)."""
    from ledger.encoding import canonical, unpack
    from ledger.errors import DecodeError
    from ledger.grants import GrantVoucher

    if not isinstance(text, str) or not text.strip():
        raise WalletError("bad_voucher", "the voucher must be a non-empty string")
    text = "".join(text.split())
    if len(text) > MAX_VOUCHER_CHARS:
        raise WalletError("bad_voucher", f"the voucher is {len(text)} characters; a real one is ~250")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise WalletError("bad_voucher", "the voucher is not base64url text (copy it whole)") from None
    try:
        v = GrantVoucher.from_dict(unpack(raw, MAX_VOUCHER_CHARS))
    except DecodeError as e:
        raise WalletError("bad_voucher", f"not a grant voucher ({e}); copy it whole") from None
    if canonical(v.to_dict()) != raw:
        raise WalletError("bad_voucher", "the voucher is not in canonical form (altered?)")
    return v


def is_authority(led) -> bool:
    return led.authority is not None and led.authority == led.pubkey


def new_grant_id() -> str:
    return "grant-" + secrets.token_hex(8)


def issue(node, to_address: str, amount: int, grant_id: str | None = None):
    """Sign a voucher crediting `amount` micro-tokens to `to_address`, as the realm authority."""
    from ledger import issue_grant
    from ledger.errors import DecodeError
    from ledger.keys import to_pubkey

    led = node.ledger
    if led is None:
        raise WalletError("ledger_disabled", "this node runs without a ledger (ledger.enabled = false)", 409)
    if not is_authority(led):
        from ledger.keys import address

        auth = address(led.authority) if led.authority else "none"
        raise WalletError("not_authority",
                          f"this node ({led.address}) is not the authority of realm {led.realm!r} "
                          f"(the authority is {auth}); only the authority's node can grant credits", 403)
    from ledger.encoding import MAX_AMOUNT

    if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
        raise WalletError("bad_amount", f"amount must be an integer of 1..{MAX_AMOUNT} micro-tokens (the $9000 "
                                        f"supply; 1 $9000 = 1000000)")
    try:
        to = to_pubkey(to_address)
    except DecodeError:
        raise WalletError("bad_address", f"not a Solana address: {str(to_address)[:60]!r}") from None
    gid = grant_id or new_grant_id()
    if not isinstance(gid, str) or not 1 <= len(gid) <= 128:
        raise WalletError("bad_request", "id must be a string of 1 to 128 characters")
    return issue_grant(node.identity.seed, led.realm, to, amount, gid)


def redeem(led, voucher):
    """Apply a voucher (GrantVoucher, wire dict or string) to `led`; WalletError that says why
    when it is for another realm, another member, from a key that is not our authority, forged
    or already credited. Synchronous (one SQLite commit)."""
    from ledger.errors import BadSignature, DecodeError, LedgerError, ReplayError
    from ledger.grants import GrantVoucher
    from ledger.keys import address

    if led is None:
        raise WalletError("ledger_disabled", "this node runs without a ledger (ledger.enabled = false)", 409)
    if isinstance(voucher, str):
        v = decode_voucher(voucher)
    elif isinstance(voucher, GrantVoucher):
        v = voucher
    else:
        try:
            v = GrantVoucher.from_dict(voucher)
        except DecodeError as e:
            raise WalletError("bad_voucher", f"not a grant voucher ({e})") from None
    if v.realm != led.realm:
        raise WalletError("wrong_realm", f"voucher {v.id!r} is for realm {v.realm!r}; this node is in realm {led.realm!r}")
    if v.to != led.pubkey:
        raise WalletError("wrong_member", f"voucher {v.id!r} credits {address(v.to)}, not this node ({led.address})", 403)
    if led.authority is None or v.authority != led.authority:
        mine = address(led.authority) if led.authority else "none"
        raise WalletError("wrong_authority", f"voucher {v.id!r} is signed by {address(v.authority)}, which is not "
                                             f"this realm's authority ({mine}; config ledger.authority)", 403)
    try:
        return led.apply_grant(v)
    except ReplayError:
        raise WalletError("replay", f"voucher {v.id!r} was already credited to this node", 409) from None
    except BadSignature as e:
        raise WalletError("bad_signature", f"voucher {v.id!r}: the authority's signature does not verify "
                                           f"(forged or altered): {e}", 403) from None
    except LedgerError as e:
        raise WalletError("refused", str(e)) from None


def peer_connected(node, peer_id: str) -> bool:
    fed = getattr(node, "federation", None)
    if fed is None:
        return False
    try:
        return any(p.to_base58() == peer_id and conns
                   for p, conns in fed.host.get_network().connections.items())
    except Exception:  # noqa: BLE001 - libp2p internals; no connection known
        return False


async def deliver(node, voucher, timeout: float = 10.0) -> tuple[bool, str | None]:
    """Send the voucher to its member over /mtor/msg/1 when a messenger exists and the member is
    connected. (delivered, why not)."""
    from ledger.keys import address

    messenger = getattr(getattr(node, "network", None), "messenger", None)
    if messenger is None:
        return False, "no p2p messenger on this node: give the member the voucher string"
    pid = peer_id_from_address(address(voucher.to))
    if not peer_connected(node, pid):
        return False, f"member {pid} is not connected: give it the voucher string"
    try:
        await messenger.request(pid, "grant", {"voucher": voucher.to_dict()}, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - MessageFailed and whatever the transport raises
        return False, f"delivery to {pid} failed ({getattr(e, 'message', None) or e}): give it the voucher string"
    return True, None


def install_grant_handler(node) -> None:
    """Accept grant vouchers sent by the realm authority over /mtor/msg/1 ("grant" messages,
    body {"voucher": <voucher dict>}): credit them to the local ledger. The lead calls this once
    `node.network.messenger` exists."""
    from federation.messages import MessageFailed

    async def on_grant(peer_id: str, body: dict) -> dict:
        try:
            e = await trio.to_thread.run_sync(redeem, node.ledger, body.get("voucher"))
        except WalletError as err:
            raise MessageFailed(err.code, err.message) from None
        log.info("grant of %d micro-tokens from %s credited (seq %d)",
                 e.body["voucher"]["amount"], peer_id, e.seq)
        return {"seq": e.seq, "balance": node.ledger.balance()}

    node.network.messenger.on("grant", on_grant)

