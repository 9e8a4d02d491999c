"""Node lifecycle: one trio process, one nursery for everything; clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path

import filelock
import trio

from . import __version__
from . import config as config_mod
from . import identity as identity_mod
from .broker import Broker
from .models import ModelManager
from .store import DB_NAME, Store

log = logging.getLogger("mtor.node")

LOCK_NAME = "mtor.lock"
PID_NAME = "mtor.pid"  # the lock holder's pid, for the "already running" message
RUNTIME_NAME = "node.json"  # where the running node tells the CLI its address
SYSOP_TOKEN_NAME = "sysop.token"
SHUTDOWN_GRACE_S = 3.0  # in-flight clients get their final error within this, well under the 5 s promise


class StartError(Exception):
    """A reason the node cannot start, for the person at the terminal."""


def prepare_data_dir(data_dir: Path) -> tuple[bool, bool]:
    """Create the data dir, config and identity if missing. Returns (config created, identity created)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for sub in ("models", "logs"):
        (data_dir / sub).mkdir(exist_ok=True)
    cfg_path = data_dir / config_mod.CONFIG_NAME
    cfg_created = not cfg_path.exists()
    if cfg_created:
        config_mod.write_default(cfg_path)
    _, id_created = identity_mod.load_or_create(data_dir / identity_mod.KEY_NAME)
    token = data_dir / SYSOP_TOKEN_NAME
    if not token.exists():
        identity_mod.write_private(token, secrets.token_urlsafe(24))
    _make_data_private(data_dir)
    return cfg_created, id_created


def _make_data_private(data_dir: Path) -> None:
    """The data dir 0700; the config (access token, realm secret) and the database (prompts,
    ledger) 0600. SQLite gives its -wal and -shm files the database's mode, so it is created 0600."""
    db = data_dir / DB_NAME
    if not db.exists():
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))  # an empty file is a new SQLite database
    changed = [p.name for p, mode in [(data_dir, 0o700), (data_dir / config_mod.CONFIG_NAME, 0o600), (db, 0o600),
                                      (data_dir / (DB_NAME + "-wal"), 0o600), (data_dir / (DB_NAME + "-shm"), 0o600)]
               if identity_mod.make_private(p, mode)]
    if changed:
        log.warning("took group/other permissions off %s in %s (they hold secrets and prompts)", ", ".join(changed), data_dir)


def read_runtime(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / RUNTIME_NAME).read_text())
    except (OSError, ValueError):
        return None


class DataDirLock:
    """An exclusive OS lock on the data dir (filelock: flock on Unix, msvcrt on Windows): a second
    node on it is refused, and the OS frees it on crash. The holder's pid is in a file beside it
    (flock's lock file is truncated by every attempt to take it)."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_NAME
        self.pid_path = data_dir / PID_NAME
        self._lock = filelock.FileLock(self.path, timeout=0, mode=0o600)

    def acquire(self) -> None:
        try:
            self._lock.acquire()
        except filelock.Timeout:
            try:
                holder = self.pid_path.read_text()[:32].strip() or "?"
            except OSError:
                holder = "?"
            raise StartError(f"another mtor-node (pid {holder}) is already running on {self.path.parent}; "
                             f"stop it first, or use another --data-dir") from None
        self.pid_path.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._lock.is_locked:
            self.pid_path.unlink(missing_ok=True)
            self._lock.release()


class Node:
    def __init__(self, data_dir: Path, cfg: config_mod.Config):
        self.data_dir = data_dir
        self.config = cfg
        self.roles = list(cfg["node.roles"])
        self.identity = identity_mod.load(data_dir / identity_mod.KEY_NAME)
        try:
            self.sysop_token = identity_mod.read_token(data_dir / SYSOP_TOKEN_NAME, "sysop token")
        except identity_mod.IdentityError as e:
            raise StartError(str(e)) from None
        if not _is_loopback(cfg["http.host"]) and not cfg["http.access_token"]:
            raise StartError(f"http.host is {cfg['http.host']}, reachable from other machines: set http.access_token "
                             f"in {config_mod.CONFIG_NAME} so that they must present it, or listen on 127.0.0.1")
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.http_url = ""
        self.store: Store | None = None
        self.models: ModelManager | None = None
        self.broker: Broker | None = None
        if cfg["p2p.enabled"]:
            from federation.realm import RealmSecretError

            from .network import realm_from_config
            try:
                realm_from_config(cfg)
            except (RealmSecretError, ValueError) as e:
                raise StartError(f"invalid p2p.realm_secret / --realm-secret: {e}") from None
        self.ledger = None  # ledger.Ledger
        self.price_overrides: dict[str, int] = {}  # --price KIND=MICROTOKENS
        self.network = None  # mtor_node.network.Network when the p2p layer runs
        self.federation = None  # its federation.Federation
        self.peer_blocks = None  # mtor_node.blocks.PeerBlocks, with the p2p layer
        self._cancel = trio.CancelScope()
        self.stopping = trio.Event()
        self.finished = trio.Event()

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def status(self) -> dict:
        b = self.broker
        return {
            "version": __version__,
            "peer_id": self.identity.peer_id,
            "solana_address": self.identity.solana_address,
            "roles": self.roles,
            "data_dir": str(self.data_dir),
            "http": self.http_url,
            "listen_addrs": list(self.federation.listen_addrs) if self.federation else [],
            "realm": self.network.realm.name if self.network else None,
            "peers": self.federation.peers.snapshot() if self.federation else [],
            "reachability": self.federation.reachability() if self.federation else None,
            "hardware": self.network.hardware if self.network else None,
            "wallet": self.wallet(),
            "charges": self.network.charges() if self.network and "worker" in self.roles else None,
            "uptime_s": round(time.time() - self.started_at, 1),
            "models": self.models.snapshot() if self.models else [],
            "queue": {"waiting": len(b.queue), "inflight": b.inflight, "max_size": b.queue.max_size,
                      "counters": dict(b.counters)} if b else {},
        }

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        lock = DataDirLock(self.data_dir)
        lock.acquire()
        try:
            self._apply_hub_mode()
            self.store = Store(self.data_dir / DB_NAME)
            if self.config["ledger.enabled"]:
                self.ledger = self._open_ledger()
            if "worker" in self.roles:
                kinds = {m.kind for m in self.config.models}
                self.models = ModelManager(self.config.models, self.data_dir / "models",
                                           {k: self.config.default_model(k) for k in kinds})
            self.broker = Broker(self.store, self.models, max_size=self.config["queue.max_size"],
                                 max_inflight=self.config["queue.max_inflight"],
                                 default_timeout=self.config["queue.timeout_s"], node_id=self.peer_id)
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.broker.run)
                    if self.config["p2p.enabled"]:
                        from .network import Network

                        if self.config["p2p.port"]:  # py-libp2p logs a failed listen and carries on deaf
                            _check_port_free(self.config["p2p.host"], self.config["p2p.port"], "--p2p-port")
                        self.network = Network(self)
                        self.federation = self.network.fed
                        from .blocks import PeerBlocks

                        self.peer_blocks = PeerBlocks(self.store.conn)  # the sysop's blocks survive a restart
                        self.peer_blocks.apply(self.federation)
                        self.broker.remote = self.network.router
                        await nursery.start(self.network.run)
                        if self.ledger is not None:
                            from .onchain import install_grant_handler

                            install_grant_handler(self)
                    await nursery.start(self._serve_http)
                    self._write_runtime()
                    self.ready_at = time.time()
                    log.info("mtor-node %s ready: %s (peer %s)", __version__, self.http_url, self.peer_id)
                    task_status.started(self)
                    if self.ledger is not None:
                        from .onchain import run_chain_tasks

                        nursery.start_soon(run_chain_tasks, self)
                    if self.models:
                        nursery.start_soon(self._start_models)
                        nursery.start_soon(self.models.unload_idle)
                        nursery.start_soon(self.models.watch_remotes)
        finally:
            (self.data_dir / RUNTIME_NAME).unlink(missing_ok=True)
            if self.ledger:
                self.ledger.close()
            if self.store:
                self.store.close()
            lock.release()
            self.finished.set()

    @property
    def realm_name(self) -> str:
        if self.config["p2p.enabled"]:
            from .network import realm_from_config

            return realm_from_config(self.config).name
        return self.config["p2p.realm"]

    def _open_ledger(self):
        from ledger import Ledger, issue_grant

        authority = self.config["ledger.authority"] or self.identity.solana_address
        led = Ledger.open(self.data_dir / DB_NAME, self.identity.seed, realm=self.realm_name, authority=authority)
        for job in list(led.accounts.holds()):  # no intent of an earlier process is still running
            led.release(job)
        grant = self.config["ledger.dev_grant"]
        if grant and authority == self.identity.solana_address and not any(e.kind == "grant" for e in led.entries(led.pubkey)):
            led.apply_grant(issue_grant(self.identity.seed, led.realm, led.pubkey, grant, "dev-grant"))
            log.info("dev grant: %d micro-tokens credited to this node", grant)
        return led

    def wallet(self) -> dict | None:
        if self.ledger is None:
            return None
        head = self.ledger.head()
        return {"address": self.identity.solana_address, "balance": self.ledger.balance(),
                "available": self.ledger.available(), "held": self.ledger.balance() - self.ledger.available(),
                "head_seq": head[0], "realm": self.ledger.realm}

    async def _start_models(self) -> None:
        await self.models.check_availability()
        await self.models.preload([m.name for m in self.config.models if self.config.model_flags[m.name]["preload"]])

    async def stop(self) -> None:
        """Refuse new work, end in-flight intents with an error, then stop everything."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("shutting down")
        if self.broker:
            await self.broker.shutdown()
            with trio.move_on_after(SHUTDOWN_GRACE_S):
                while self.broker.tickets:  # let each client read its final event
                    await trio.sleep(0.02)
            await trio.sleep(0.05)  # one more turn for response streams to flush
        self._cancel.cancel()

    async def _serve_http(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from hypercorn.trio import serve

        from ui.app import create_app
        from ui.http_server import hypercorn_config

        host, port = self.config["http.host"], self.config["http.port"]
        _check_port_free(host, port)
        hc = hypercorn_config(self.config)  # timeouts, connection cap, hypercorn fixes
        self.http_url = f"http://{host}:{port}"
        self.http_app = create_app(self)  # kept: tests look at its guard's state
        await serve(self.http_app, hc, task_status=task_status)

    def _write_runtime(self) -> None:
        tmp = self.data_dir / (RUNTIME_NAME + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "http": self.http_url, "peer_id": self.peer_id}))
        os.replace(tmp, self.data_dir / RUNTIME_NAME)

    def _apply_hub_mode(self) -> None:
        mode = self.config["hub.offline"]
        if mode == "true" or self.config["p2p.airgap"]:  # airgap: no hub calls at all
            os.environ["HF_HUB_OFFLINE"] = "1"
        elif mode == "false":
            os.environ.pop("HF_HUB_OFFLINE", None)


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _check_port_free(host: str, port: int, flag: str = "--port") -> None:
    """Fail with a clear message before hypercorn buries the bind error in an exception group."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise StartError(f"cannot listen on {host}:{port}: {e.strerror or e}; is another program using "
                             f"the port? choose another with {flag}") from None


async def run_until_signalled(node: Node, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run the node; SIGINT or SIGTERM starts a clean shutdown (a second one forces it)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            async def watch_signals():
                async for _ in signals:
                    if node.stopping.is_set():
                        node._cancel.cancel()
                    else:
                        nursery.start_soon(node.stop)

            nursery.start_soon(watch_signals)
            try:
                await nursery.start(node.run)
            except RuntimeError:  # trio: node.run returned before it was up
                if not node.stopping.is_set():
                    raise
                # Ctrl-C during the start: node.run already cleaned up; a clean exit, no traceback
            else:
                task_status.started(node)
                await node.finished.wait()
            nursery.cancel_scope.cancel()
