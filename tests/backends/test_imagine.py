"""diffusers backend on a tiny random Stable Diffusion pipeline (CLIP tokenizer trained on the spot)."""

from __future__ import annotations

import io
import threading

import pytest
import trio
from PIL import Image

from mtor_node.backends.imagine_diffusers import work_units
from mtor_node.intents import Intent

from backend_helpers import Recorder, load_backend, run_intent


@pytest.fixture
async def sd(tiny_sd_dir, cache_dir):
    return await load_backend("diffusers", "imagine", str(tiny_sd_dir), cache_dir)


async def test_text_to_image(sd):
    intent = Intent(kind="imagine", prompt="a photo of a cat", params={"width": 96, "height": 64, "steps": 3, "guidance": 5.0, "seed": 1, "negative_prompt": "blurry"})
    result, rec = await run_intent(sd, intent)
    img = Image.open(io.BytesIO(result["image_png"]))
    assert img.format == "PNG" and img.size == (96, 64)
    progress = rec.of("progress")
    assert [e["step"] for e in progress] == [1, 2, 3] and all(e["total"] == 3 for e in progress)
    assert result["seed"] == 1 and result["steps"] == 3
    assert result["units"] == work_units(96, 64, 3) == 96 * 64 * 3  # pixel-steps, the unit quotes use
    same, _ = await run_intent(sd, Intent(kind="imagine", prompt="a photo of a cat", params={"width": 96, "height": 64, "steps": 3, "guidance": 5.0, "seed": 1, "negative_prompt": "blurry"}))
    assert same["image_png"] == result["image_png"]  # a seed makes the image again


async def test_turbo_options(tiny_sd_dir, cache_dir):
    turbo = await load_backend("diffusers", "imagine", str(tiny_sd_dir), cache_dir, options={"max_steps": 2, "fixed_guidance": 0.0})
    result, rec = await run_intent(turbo, Intent(kind="imagine", prompt="a fox", params={"width": 64, "height": 64, "steps": 20}))
    assert result["steps"] == 2 and len(rec.of("progress")) == 2
    assert isinstance(result["seed"], int)  # chosen at random and returned


async def test_cancel_at_a_step(sd):
    """Cancelling the intent frees the caller at once, and the abandoned thread stops at its next step."""
    intent = Intent(kind="imagine", prompt="a cat", params={"width": 64, "height": 64, "steps": 50})
    intent.validate()
    rec = Recorder()
    unwound = threading.Event()
    generate = sd._generate

    def watched(*args):
        try:
            return generate(*args)
        finally:
            unwound.set()

    sd._generate = watched
    with trio.CancelScope() as scope:
        async def emit(event):
            await rec(event)
            if event["step"] == 2:
                scope.cancel()

        with trio.fail_after(60):
            await sd.run(intent, emit)
    assert scope.cancelled_caught
    assert await trio.to_thread.run_sync(unwound.wait, 30), "the pipeline thread did not stop"
    assert 2 <= len(rec.of("progress")) <= 3


def test_units():
    assert work_units(512, 512, 20) == 512 * 512 * 20  # what one base imagine price buys
    assert work_units(512, 512, 4) == 512 * 512 * 4
    assert work_units(64, 64, 1) == 4096
    assert work_units(1024, 1024, 50) == 1024 * 1024 * 50
