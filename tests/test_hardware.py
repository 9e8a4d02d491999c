"""The hardware probe and its refresh before each announcement (free VRAM re-read)."""

from __future__ import annotations

import pytest

from mtor_node import hardware


def test_refresh_without_gpus_is_the_same_reading():
    hw = hardware.probe()
    assert hw["cpu"]["cores"] >= 1 and hw["cpu"]["ram"] > 0
    if not hw["gpus"]:
        assert hardware.refresh(hw) is hw
    assert hardware.refresh({"gpus": [], "cpu": {"cores": 1, "ram": 1}})["gpus"] == []


def test_refresh_sees_gpu_memory_taken_since_the_probe():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine (runs on the GPU machine)")
    hw = hardware.probe()
    before = hw["gpus"][0]["vram_free"]
    assert before % hardware.VRAM_QUANTUM == 0 and 0 < before <= hw["gpus"][0]["vram_total"]
    block = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda:0")  # 2 GiB taken by someone else
    try:
        after = hardware.refresh(hw)
        assert after is not hw and after["gpus"][0]["name"] == hw["gpus"][0]["name"]
        assert before - after["gpus"][0]["vram_free"] >= 2 * 2**30 - 2 * hardware.VRAM_QUANTUM
    finally:
        del block
        torch.cuda.empty_cache()
    assert hardware.refresh(after)["gpus"][0]["vram_free"] >= after["gpus"][0]["vram_free"]
