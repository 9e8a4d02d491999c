"""The chaos harness: a realm of real `mtor-node` processes, each in its own network namespace,
a bounded stream of paid intents, RSS sampling, and the invariants checked after every fault.

Every wait here is bounded by a deadline; `time.sleep` appears only inside bounded polling loops
(polling a condition) or where it models load or a fault's duration (said so in a comment).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import write_config

from .netns import Fabric, NsHTTP, proc_sockets, sh

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
HTTP_PORT = 9000  # every node has its own loopback: the same port in every namespace
P2P_PORT = 4001
PRICE = 1000  # micro-tokens per 1k output tokens: 1 per word of the echo model
SLOW_ECHO = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True,
                           "options": {"delay_s": 0.05}}}  # a modelled per-token cost


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll `predicate` until it returns a truthy value; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # a node that is restarting refuses connections: keep polling
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)  # polling a condition, bounded by the deadline


def peer_id_of(seed: bytes) -> str:
    from mtor_node.identity import Identity
    return Identity(seed).peer_id


class ChaosNode:
    def __init__(self, realm: "Realm", i: int, name: str, roles: list[str], models: dict, prices: dict,
                 dev_grant: int = 0):
        self.realm, self.i, self.name = realm, i, name
        self.roles, self.models, self.prices, self.dev_grant = roles, models, prices, dev_grant
        self.ns = realm.fabric.add_node(i)
        self.ip = Fabric.ip(i)
        self.data_dir = realm.base / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        from mtor_node.identity import create
        self.seed = create(self.data_dir / "identity.key").seed
        self.peer_id = peer_id_of(self.seed)
        self.addr = f"/ip4/{self.ip}/tcp/{P2P_PORT}/p2p/{self.peer_id}"
        self.http = NsHTTP(self.ns, HTTP_PORT)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path = realm.base / f"{name}.log"

    def write_config(self, peers: list[str]) -> None:
        sections = {"http": {"port": HTTP_PORT}, "node": {"roles": self.roles},
                    "p2p": {"host": self.ip, "port": P2P_PORT, "peers": [p for p in peers if p != self.addr],
                            "realm_secret": self.realm.secret, "airgap": True},
                    "ledger": {"dev_grant": self.dev_grant}}
        if self.prices:
            sections["prices"] = self.prices
        write_config(self.data_dir, self.models, **sections)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"\n===== start #{self.starts} at {time.time():.3f}\n")
        log.flush()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "mtor_node", "start", "--data-dir", str(self.data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=ENV)
        log.close()

    def wait_ready(self, timeout: float = 90) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            return self.http.get("/api/v1/status", timeout=5)
        try:
            wait_until(ready, timeout, f"{self.name} to answer /api/v1/status", 0.3)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- {self.name} log ---\n{self.tail()}") from None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def alive(self) -> bool:
        return self.pid is not None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text()[-n:]
        except OSError:
            return ""

    # ---- views ---------------------------------------------------------------------------------
    def status(self, timeout: float = 10) -> dict:
        return self.http.get("/api/v1/status", timeout=timeout)

    def peers(self) -> dict[str, dict]:
        return {p["peer_id"]: p for p in self.status()["peers"]}

    def rss_kb(self) -> int | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'mtor.db'}?mode=ro", uri=True, timeout=10)


class Realm:
    """Nodes of one run. Workers: w1..w4 (SLOW_ECHO, price PRICE); brokers: b1, b2 (dev grant)."""

    def __init__(self, base: Path, fabric: Fabric):
        from federation.realm import format_secret, new_realm
        self.base, self.fabric = base, fabric
        self.secret = format_secret(new_realm(f"chaos{fabric.run}"))
        self.realm_name = f"chaos{fabric.run}"
        self.nodes: dict[str, ChaosNode] = {}
        self.extra_peers: list[str] = []  # rogue peers (not mtor-node processes)

    def add(self, name: str, roles: list[str], models: dict, prices: dict | None = None, dev_grant: int = 0) -> ChaosNode:
        n = ChaosNode(self, len(self.nodes) + len(self.extra_peers), name, roles, models, prices or {}, dev_grant)
        self.nodes[name] = n
        return n

    @property
    def seeds(self) -> list[str]:
        return [n.addr for n in self.nodes.values() if n.name in ("w1", "w2")]

    def start_all(self, timeout: float = 120) -> None:
        for n in self.nodes.values():
            n.write_config(self.seeds)
        for n in self.nodes.values():
            n.start()
        deadline = time.monotonic() + timeout
        for n in self.nodes.values():
            n.wait_ready(max(5.0, deadline - time.monotonic()))

    @property
    def workers(self) -> list[ChaosNode]:
        return [n for n in self.nodes.values() if "worker" in n.roles]

    @property
    def brokers(self) -> list[ChaosNode]:
        return [n for n in self.nodes.values() if n.roles == ["broker"]]

    @property
    def grants(self) -> int:
        return sum(n.dev_grant for n in self.nodes.values())

    def sees(self, broker: ChaosNode, peer_ids, fresh=True) -> bool:
        peers = broker.peers()
        return all(p in peers and (peers[p]["fresh"] or not fresh) and peers[p]["models"].get("chat") for p in peer_ids)

    def wait_mesh(self, timeout: float = 60, workers: list[ChaosNode] | None = None) -> None:
        ids = [w.peer_id for w in (workers or self.workers)]
        for b in self.brokers:
            wait_until(lambda: self.sees(b, ids), timeout, f"{b.name} to see fresh announcements of {len(ids)} workers")

    def close(self) -> None:
        for n in self.nodes.values():
            try:
                n.stop(5)
            except Exception:
                n.kill()


# ---- load -------------------------------------------------------------------------------------

@dataclass
class IntentRecord:
    n: int
    broker: str
    text: str
    timeout: float
    t0: float
    t1: float | None = None
    id: str | None = None
    outcome: str = "running"  # result | error | refused (never accepted) | conn_lost | hung
    code: str = ""
    message: str = ""
    peer: str | None = None
    cost: int | None = None
    failovers: int = 0
    failover_from: list = field(default_factory=list)
    text_ok: bool | None = None
    events: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return (self.t1 or time.monotonic()) - self.t0


class LoadGen:
    """A steady, bounded stream of paid chat intents, round-robin over the brokers.

    rate: intents per second in total; each intent has `words` words (1 micro-token each at
    PRICE) and a `timeout` in seconds. At most `max_inflight` run at once; more are counted as
    `skipped` rather than piling up threads."""

    def __init__(self, brokers: list[ChaosNode], rate: float = 3.0, words: int = 20, timeout: float = 15.0,
                 max_inflight: int = 40):
        self.brokers, self.rate, self.words, self.timeout, self.max_inflight = brokers, rate, words, timeout, max_inflight
        self.records: list[IntentRecord] = []
        self.failover_log: list[tuple[float, str, str]] = []  # (time, from peer, code)
        for b in brokers:
            b.realm.load_records = self.records  # for diagnostics of leftover holds
        self.skipped = 0
        self._counter = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self.paused: set[str] = set()  # broker names not sent to (e.g. while it is down on purpose)

    def start(self) -> "LoadGen":
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()
        return self

    def _tick(self) -> None:
        period = 1.0 / self.rate
        nxt = time.monotonic()
        k = 0
        while not self._stop.is_set():
            live = [b for b in self.brokers if b.name not in self.paused]
            if live:
                b = live[k % len(live)]
                k += 1
                with self._lock:
                    self._threads = [t for t in self._threads if t.is_alive()]
                    if len(self._threads) >= self.max_inflight:
                        self.skipped += 1
                    else:
                        t = threading.Thread(target=self._one, args=(b,), daemon=True)
                        self._threads.append(t)
                        t.start()
            nxt += period
            self._stop.wait(max(0.0, nxt - time.monotonic()))  # the load's pace, not synchronisation

    def _one(self, broker: ChaosNode) -> None:
        n = next(self._counter)
        text = " ".join([f"i{n}"] + [f"w{j}" for j in range(self.words - 1)])
        rec = IntentRecord(n, broker.name, text, self.timeout, time.monotonic())
        with self._lock:
            self.records.append(rec)
        body = {"kind": "chat", "messages": [{"role": "user", "content": text}], "user": f"load-{broker.name}",
                "params": {"max_tokens": self.words}, "timeout": self.timeout}
        accepted = False
        try:
            # socket reads bounded: the node must answer within the intent's timeout (+ slack)
            for ev in broker.http.stream_intent(body, read_timeout=self.timeout + 10):
                t = ev.get("type")
                rec.events.append(t)
                if t == "queued":
                    accepted = True
                    rec.id = ev.get("id", rec.id)
                elif t == "failover":
                    rec.failovers += 1
                    rec.failover_from.append(ev.get("from") or "")
                    self.failover_log.append((time.monotonic(), ev.get("from") or "", ev.get("code") or ""))
                elif t == "result":
                    rec.outcome, rec.peer, rec.cost = "result", ev.get("peer"), ev.get("cost")
                    rec.id = ev.get("id", rec.id)
                    rec.text_ok = ev.get("text") == text
                elif t == "error":
                    rec.outcome = "error" if accepted or not ev.get("code", "").startswith("http_") else "refused"
                    rec.code, rec.message = str(ev.get("code", "")), str(ev.get("message", ""))
                    rec.id = ev.get("id", rec.id)
        except (ConnectionRefusedError, FileNotFoundError) as e:
            rec.outcome, rec.message = "refused", repr(e)
        except TimeoutError as e:
            rec.outcome, rec.message = "hung", repr(e)
        except OSError as e:
            rec.outcome, rec.message = ("conn_lost" if accepted else "refused"), repr(e)
        except Exception as e:  # a malformed stream: record it, the checks say so
            rec.outcome, rec.message = "conn_lost", repr(e)
        finally:
            if rec.outcome == "running":
                rec.outcome = "conn_lost" if accepted else "refused"
            rec.t1 = time.monotonic()

    def stop(self, drain_timeout: float | None = None) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join(5)
        deadline = time.monotonic() + (drain_timeout if drain_timeout is not None else self.timeout + 15)
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    def since(self, t0: float) -> list[IntentRecord]:
        with self._lock:
            return [r for r in self.records if r.t0 >= t0]

    @staticmethod
    def summary(recs: list[IntentRecord]) -> dict:
        out: dict = {"sent": len(recs)}
        for r in recs:
            out[r.outcome] = out.get(r.outcome, 0) + 1
        out["failovers"] = sum(r.failovers for r in recs)
        codes: dict = {}
        for r in recs:
            if r.outcome == "error":
                codes[r.code] = codes.get(r.code, 0) + 1
        out["error_codes"] = codes
        return out


# ---- memory -----------------------------------------------------------------------------------

class RssSampler:
    def __init__(self, realm: Realm, interval: float = 2.0):
        self.realm, self.interval = realm, interval
        self.samples: list[tuple[float, str, int]] = []  # (seconds since start, node, kB)
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self._t0
            for n in list(self.realm.nodes.values()):
                kb = n.rss_kb()
                if kb is not None:
                    self.samples.append((now, n.name, kb))
            self._stop.wait(self.interval)  # the sampling period, not synchronisation

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def table(self, buckets: int = 8) -> str:
        if not self.samples:
            return "(no samples)"
        names = sorted({s[1] for s in self.samples})
        end = max(s[0] for s in self.samples)
        edges = [end * k / buckets for k in range(buckets + 1)]
        lines = ["t (s)        " + "".join(f"{n:>10}" for n in names)]
        for a, b in zip(edges, edges[1:]):
            row = f"{a:6.0f}-{b:<6.0f}"
            for n in names:
                vals = [kb for t, m, kb in self.samples if m == n and a <= t <= b]
                row += f"{(max(vals) / 1024):9.1f}M" if vals else f"{'-':>10}"
            lines.append(row)
        return "\n".join(lines)

    def growth_per_hour(self, warmup_s: float = 60.0) -> dict[str, float]:
        """Least-squares slope of RSS (bytes/hour) per node after `warmup_s`, per process lifetime
        (a restart starts a new series; the longest series counts)."""
        out = {}
        for n in sorted({s[1] for s in self.samples}):
            pts = [(t, kb * 1024) for t, m, kb in self.samples if m == n and t >= warmup_s]
            # split series at drops of > 30 % (a restart)
            series, cur = [], []
            for p in pts:
                if cur and p[1] < 0.7 * cur[-1][1]:
                    series.append(cur)
                    cur = []
                cur.append(p)
            if cur:
                series.append(cur)
            best = max(series, key=len, default=[])
            if len(best) < 3:
                continue
            mt = sum(t for t, _ in best) / len(best)
            mv = sum(v for _, v in best) / len(best)
            den = sum((t - mt) ** 2 for t, _ in best)
            out[n] = (sum((t - mt) * (v - mv) for t, v in best) / den) * 3600 if den else 0.0
        return out

    def png(self, path: Path) -> bool:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return False
        fig, ax = plt.subplots(figsize=(8, 4))
        for n in sorted({s[1] for s in self.samples}):
            pts = [(t, kb / 1024) for t, m, kb in self.samples if m == n]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=n)
        ax.set_xlabel("seconds")
        ax.set_ylabel("RSS (MiB)")
        ax.legend()
        fig.savefig(path)
        return True


# ---- invariants -------------------------------------------------------------------------------

def decode_entries(node: ChaosNode) -> list:
    from ledger.entry import Entry
    with node.db() as db:
        return [Entry.from_bytes(r[0]) for r in db.execute("SELECT raw FROM ledger_entries")]


def my_entries(node: ChaosNode, kind: str | None = None) -> list:
    from mtor_node.identity import pubkey_from_peer_id
    me = pubkey_from_peer_id(node.peer_id)
    return [e for e in decode_entries(node) if e.author == me and (kind is None or e.kind == kind)]


def check_intents(recs: list[IntentRecord], *, allow_conn_lost: set[str] = frozenset()) -> list[str]:
    """Every accepted intent completed or failed with a clear error within its timeout."""
    problems = []
    for r in recs:
        if r.outcome == "hung":
            problems.append(f"intent {r.n} on {r.broker} hung past its timeout ({r.duration:.1f} s)")
        elif r.outcome == "conn_lost" and r.broker not in allow_conn_lost:
            problems.append(f"intent {r.n} on {r.broker}: stream ended without a final event ({r.message})")
        elif r.outcome == "error" and (not r.code or not r.message):
            problems.append(f"intent {r.n}: error without code/message: {r.code!r} {r.message!r}")
        elif r.outcome == "result" and not r.text_ok:
            problems.append(f"intent {r.n}: wrong text from {r.peer}")
        if r.outcome in ("result", "error") and r.duration > r.timeout + 5:
            problems.append(f"intent {r.n} took {r.duration:.1f} s, timeout {r.timeout:g} s")
    return problems


def check_paid_once(realm: Realm) -> list[str]:
    """Pay entries: one per job per broker; earn entries: one per job across all workers."""
    problems = []
    earned: dict[str, str] = {}
    for n in realm.nodes.values():
        seen = set()
        for e in my_entries(n, "pay"):
            job = e.body["job"]
            if job in seen:
                problems.append(f"{n.name} paid job {job} twice")
            seen.add(job)
        for e in my_entries(n, "earn"):
            job = e.body["job"]
            if job in earned:
                problems.append(f"job {job} earned by {earned[job]} and {n.name}")
            earned[job] = n.name
    return problems


def wallets(realm: Realm) -> dict[str, dict]:
    return {n.name: n.status()["wallet"] for n in realm.nodes.values() if n.alive()}


def check_holds_and_sum(realm: Realm, timeout: float = 25) -> dict:
    """Idle realm: held == 0 everywhere and balances sum to the grants. Polls (pays are
    delivered in the background, with retries) and returns the last wallets seen.

    `realm.residue` holds what an earlier fault left behind and a known bug keeps there (stale
    holds of a broker killed with intents in flight; pays never delivered): those are reported by
    their own tests; here only NEW leftovers fail."""
    last = {}
    res = getattr(realm, "residue", None) or {"held": {}, "unmatched": {}}

    def settled():
        nonlocal last
        last = wallets(realm)
        lost = sum(res["unmatched"].values())
        return (all(w["held"] == res["held"].get(name, 0) for name, w in last.items())
                and sum(w["balance"] for w in last.values()) + lost == realm.grants)
    try:
        wait_until(settled, timeout, "held == 0 on every node and balances summing to the grants", 0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}: wallets {json.dumps(last)}; unmatched pays: {unmatched_pays(realm)}; "
                             f"known residue {res}; holds: {holds_detail(realm)}") from None
    return last


def holds_detail(realm: Realm) -> dict:
    """job -> (amount, worker peer id) of every hold, and what the load saw of that job."""
    from mtor_node.identity import peer_id_from_pubkey
    out = {}
    recs = {r.id: r for r in getattr(realm, "load_records", [])}
    for n in realm.brokers:
        with n.db() as db:
            for job, amount, peer in db.execute("SELECT job, amount, peer FROM ledger_holds"):
                r = recs.get(job)
                out[f"{n.name}:{job}"] = {"amount": amount, "peer": peer_id_from_pubkey(peer)[-8:] if peer else None,
                                          "load": (r.outcome, r.code, r.peer and r.peer[-8:], r.failovers,
                                                   [f[-8:] for f in r.failover_from]) if r else None}
    return out


def record_residue(realm: Realm, timeout: float = 20) -> dict:
    """After a crash: wait for background pays to land, then record held amounts and
    undelivered pays (job -> amount) that remain."""
    def quiet():
        w = wallets(realm)
        return w if len(w) == len(realm.nodes) else None
    w = wait_until(quiet, timeout, "every node answering")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unmatched = unmatched_pay_amounts(realm)
        w = wallets(realm)
        if sum(x["balance"] for x in w.values()) + sum(unmatched.values()) == realm.grants and not unmatched:
            break
        time.sleep(0.5)  # polling: background pay deliveries retry for ~6 s
    realm.residue = {"held": {k: v["held"] for k, v in w.items() if v["held"]}, "unmatched": unmatched_pay_amounts(realm)}
    return realm.residue


def unmatched_pay_amounts(realm: Realm) -> dict[str, int]:
    earns = {e.body["job"] for n in realm.nodes.values() for e in my_entries(n, "earn")}
    return {e.body["job"]: e.body["amount"] for n in realm.brokers for e in my_entries(n, "pay") if e.body["job"] not in earns}


def unmatched_pays(realm: Realm) -> list[str]:
    """Pay entries whose worker has no earn for the job (pay not delivered)."""
    earns = {}
    for n in realm.nodes.values():
        for e in my_entries(n, "earn"):
            earns[e.body["job"]] = n.name
    out = []
    for n in realm.brokers:
        for e in my_entries(n, "pay"):
            if e.body["job"] not in earns:
                out.append(f"{n.name} seq {e.seq} job {e.body['job']} amount {e.body['amount']}")
    return out


def verify_ledgers(realm: Realm) -> dict[str, dict]:
    out = {}
    for n in realm.nodes.values():
        if n.alive():
            out[n.name] = n.http.post("/api/v1/ledger/verify", {}, timeout=60)
        else:
            out[n.name] = verify_offline(n)
    return out


def verify_offline(n: ChaosNode) -> dict:
    r = subprocess.run([sys.executable, "-m", "mtor_node", "ledger", "verify", "--offline", "--json",
                        "--data-dir", str(n.data_dir)], capture_output=True, text=True, timeout=60, env=ENV)
    try:
        rep = json.loads(r.stdout)
    except ValueError:
        rep = {"ok": r.returncode == 0, "raw": (r.stdout + r.stderr)[-500:]}
    rep["rc"] = r.returncode
    return rep


def foreign_sockets(node: ChaosNode) -> list[dict]:
    """Sockets of the node's namespace talking to anything but loopback or the realm's subnet."""
    from .netns import SUBNET
    out = []
    for s in proc_sockets(node.pid):
        ip, port = s["remote"]
        if port == 0 and ip in ("0.0.0.0", "::"):
            continue  # listening / unconnected
        if ip.startswith("127.") or ip == "::1" or ip.startswith(SUBNET + ".") or ip.startswith("::ffff:" + SUBNET + "."):
            continue
        out.append(s)
    return out


def ns_exec(ns: str, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *cmd, check=False, timeout=timeout)
