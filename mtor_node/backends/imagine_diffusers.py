"""Prompt → PNG with a diffusers text-to-image pipeline (Stable Diffusion 1.x/2.x, SDXL, turbo models).

Source: a hub id (e.g. ``stabilityai/sd-turbo``) or a local pipeline folder (``save_pretrained``
layout, ``model_index.json`` at its root), loaded with `AutoPipelineForText2Image`; a single
``.safetensors``/``.ckpt`` file is loaded with `StableDiffusionPipeline.from_single_file` (that
needs the model's config, so offline it works only when the config is in the hub cache).

Options:
  ``max_steps``      cap on the steps an intent may ask for (turbo models: 1-4; default none)
  ``fixed_guidance`` guidance scale used whatever the intent asks (turbo models: 0.0)
  ``attention_slicing`` (bool, default false): less memory, a little slower
  ``safety_checker`` (bool, default true): keep the checkpoint's safety checker when it has one

Intent params: width, height, steps, guidance, seed (random when absent, and returned so the
image can be made again), negative_prompt.

Events: one {"type": "progress", "step": i, "total": n} per denoising step (i = 1..n); the step
callback is also where cancellation is noticed.
Result: {"image_png", "width", "height", "steps", "seed", "nsfw"?, "units"}; ``units`` is the work in
pixel-steps, w·h·steps, the unit pricing quotes in (federation/kinds.py): one 512×512 image at
20 steps = 5,242,880 units, the amount one base price buys.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from ..intents import Intent
from . import sources
from ._media import png_bytes
from .base import Backend, BackendError, Emit, ThreadContext, run_in_thread
from .device import check_fits, pick_device, pick_dtype

from federation.kinds import REF_IMAGE_PIXEL_STEPS as REFERENCE_WORK
from federation.kinds import pixel_steps


def work_units(width: int, height: int, steps: int) -> int:
    """imagine units (pixel-steps), as federation/kinds.py defines them for quotes and charges."""
    return pixel_steps(width, height, steps)


def pipeline_bytes(path: Path) -> int:
    """Weights on disk: every safetensors (else .bin/.ckpt) file of the pipeline's folders."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for pattern in ("*.safetensors", "*.bin", "*.ckpt"):
        total = sum(f.stat().st_size for f in path.rglob(pattern))
        if total:
            break
    return total


def _dtype_kwarg() -> str:
    """diffusers renamed `torch_dtype` to `dtype` (the old name warns); older releases know only the old one."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"


class DiffusersImagine(Backend):
    kinds = ("imagine",)

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.pipe = None
        self.device, self.dtype = "cpu", None

    def load_sync(self, progress: Callable[[str, float | None], None]) -> None:
        import torch
        from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

        if not self.spec.source:
            raise BackendError("bad_config", f"model {self.spec.name!r} needs a source (a hub id, a folder or a file)")
        path = sources.resolve(self.spec.source, progress)
        self.device = pick_device(self.spec)
        self.dtype = pick_dtype(self.spec, self.device)
        weights = pipeline_bytes(path)
        check_fits(self.spec, self.device, int(weights * 1.3))
        progress(f"loading {path.name} on {self.device}", None)
        kwargs = {_dtype_kwarg(): self.dtype}
        if not self.spec.options.get("safety_checker", True):
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        try:
            if Path(path).is_file():
                pipe = StableDiffusionPipeline.from_single_file(str(path), **kwargs)
            else:
                pipe = AutoPipelineForText2Image.from_pretrained(str(path), **kwargs)
        except (OSError, ValueError, KeyError) as e:
            raise BackendError("unavailable", f"could not load diffusers pipeline from {path}: {e}") from e
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        if self.spec.options.get("attention_slicing"):
            pipe.enable_attention_slicing()
        self.pipe = pipe
        self.torch = torch

    def unload_sync(self) -> None:
        self.pipe = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict:
        return {"device": self.device, "dtype": str(self.dtype).removeprefix("torch."),
                "pipeline": type(self.pipe).__name__ if self.pipe is not None else None}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        if self.pipe is None:
            raise BackendError("not_loaded", f"model {self.spec.name!r} is not loaded")
        return await run_in_thread(lambda ctx: self._generate(intent, ctx), emit)

    def _generate(self, intent: Intent, ctx: ThreadContext) -> dict:
        torch, p, opts = self.torch, intent.params, self.spec.options
        width, height = int(p.get("width", 512)), int(p.get("height", 512))
        steps = int(p.get("steps", 20))
        if opts.get("max_steps"):
            steps = min(steps, int(opts["max_steps"]))
        guidance = float(opts["fixed_guidance"]) if opts.get("fixed_guidance") is not None else float(p.get("guidance", 7.5))
        seed = p.get("seed")
        if seed is None:
            seed = random.randrange(2**32)
        generator = torch.Generator(device="cpu" if self.device == "mps" else self.device).manual_seed(int(seed))
        done = 0

        def on_step_end(pipe, i, timestep, callback_kwargs):
            nonlocal done
            ctx.check()
            done = i + 1
            ctx.push({"type": "progress", "step": done, "total": steps})
            return callback_kwargs

        kwargs = {}
        if p.get("negative_prompt") and guidance > 1.0:  # without guidance the negative prompt has no effect
            kwargs["negative_prompt"] = p["negative_prompt"]
        try:
            with torch.inference_mode():
                out = self.pipe(
                    prompt=intent.prompt, width=width, height=height, num_inference_steps=steps,
                    guidance_scale=guidance, generator=generator, callback_on_step_end=on_step_end,
                    output_type="pil", **kwargs,
                )
        except ValueError as e:  # the pipeline's own argument checks (sizes it cannot do, ...)
            raise BackendError("bad_params", f"the pipeline refused the request: {e}") from e
        ctx.check()
        image = out.images[0]
        result = {
            "image_png": png_bytes(image), "width": image.width, "height": image.height,
            "steps": done or steps, "seed": int(seed), "units": work_units(width, height, done or steps),
        }
        nsfw = getattr(out, "nsfw_content_detected", None)
        if nsfw:
            result["nsfw"] = bool(nsfw[0])
        return result
