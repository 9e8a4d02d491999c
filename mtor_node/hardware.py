"""What hardware this node has: GPUs through torch (name, VRAM total/free, CUDA), else CPU cores and RAM.

Probed in a thread at start (importing torch takes a second or two); `refresh()` re-reads the free
VRAM before each announcement, cheaply (torch is imported by then, and no GPU: nothing to do).
Free memory is rounded down to VRAM_QUANTUM so that the announcement changes, and is gossiped
again, only when it moves by that much.
"""

from __future__ import annotations

import os
import sys

VRAM_QUANTUM = 64 * 2**20


def probe() -> dict:
    gpus = []
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                gpus.append({"name": torch.cuda.get_device_name(i), "vram_total": int(total),
                             "vram_free": _quantize(free), "cuda": torch.version.cuda or ""})
    except Exception:  # no torch, or a broken driver: the node still serves on CPU
        gpus = []
    return {"gpus": gpus, "cpu": {"cores": os.cpu_count() or 1, "ram": _ram_bytes()}}


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _quantize(free: int) -> int:
    return int(free) // VRAM_QUANTUM * VRAM_QUANTUM


def refresh(previous: dict) -> dict:
    """`previous` with each GPU's free memory read again; the same dict when there is nothing to read."""
    gpus = previous.get("gpus") or []
    torch = sys.modules.get("torch")  # never import torch here: probe() did, or there is no GPU to read
    if not gpus or torch is None:
        return previous
    try:
        fresh = [{**g, "vram_free": _quantize(torch.cuda.mem_get_info(i)[0])} for i, g in enumerate(gpus)]
    except Exception:  # a GPU that fell off the bus: keep announcing the last reading rather than crash
        return previous
    return previous if fresh == gpus else {**previous, "gpus": fresh}
