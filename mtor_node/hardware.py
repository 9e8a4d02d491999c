"""What hardware this node has: GPUs through torch (name, VRAM total/free, CUDA), else CPU cores and RAM.

Probed in a thread at start (importing torch takes a second or two) and refreshed with announcements.
"""

from __future__ import annotations

import os


def probe() -> dict:
    gpus = []
    try:
        import torch

        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                gpus.append({"name": torch.cuda.get_device_name(i), "vram_total": int(total),
                             "vram_free": int(free), "cuda": torch.version.cuda or ""})
    except Exception:  # no torch, or a broken driver: the node still serves on CPU
        gpus = []
    return {"gpus": gpus, "cpu": {"cores": os.cpu_count() or 1, "ram": _ram_bytes()}}


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
