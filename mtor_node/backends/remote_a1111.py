"""Adapter for an AUTOMATIC1111 Stable Diffusion web UI (or Forge / SD.Next, same API) started with ``--api``.

Registry entry: backend ``a1111``, kind ``imagine``; source (or options.url) the server, e.g.
``http://127.0.0.1:7860``; options.model a checkpoint title to switch to for each request
(``override_settings.sd_model_checkpoint``; default: whatever the server has loaded);
options.sampler (e.g. ``Euler a``); options.progress_interval_s (default 0.5; 0 disables progress
polling); options.timeout_s (read, default 600), options.connect_timeout_s (default 10);
options.api_key / api_key_env if the UI is behind a token-checking proxy.

Wire format: ``POST /sdapi/v1/txt2img`` → ``{"images": [base64 PNG], "info": "<json with seed>"}``.
While it runs, ``GET /sdapi/v1/progress?skip_current_image=true`` → ``{"progress", "state":
{"sampling_step", "sampling_steps"}}`` is polled and each new step is emitted as progress. A cancelled
intent sends ``POST /sdapi/v1/interrupt`` so the GPU stops too.
Health: ``GET /sdapi/v1/sd-models`` lists the checkpoints.
"""

from __future__ import annotations

import base64
import json
import random

import httpx
import trio

from ..intents import Intent
from . import remote_http
from .base import Backend, BackendError, Emit

DEFAULT_URL = "http://127.0.0.1:7860"


class A1111Remote(Backend):
    kinds = ("imagine",)

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.url = remote_http.server_url(self, DEFAULT_URL)
        self.what = f"AUTOMATIC1111 at {self.url}"

    def load_sync(self, progress) -> None:
        if self.spec.kind != "imagine":
            raise BackendError("bad_config", f"the a1111 adapter serves imagine, not {self.spec.kind}")

    def describe(self) -> dict:
        return {"remote": "a1111", "url": self.url, "model": self.spec.options.get("model")}

    async def health(self) -> dict:
        try:
            async with remote_http.client(self, self.url, read_default=10.0) as c:
                data = await remote_http.get_json(c, "/sdapi/v1/sd-models", self.what)
        except BackendError as e:
            return remote_http.health_error(self.url, e)
        models = [m.get("title") or m.get("model_name") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
        models = [m for m in models if m]
        wanted = self.spec.options.get("model")
        serves = bool(models) and (not wanted or any(wanted in (m, m.split(" [")[0]) for m in models))
        return {"ok": True, "url": self.url, "models": models, "model": wanted, "serves": serves,
                "kinds": ["imagine"] if serves else []}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        from .imagine_diffusers import work_units

        p, opts = intent.params, self.spec.options
        steps = int(p.get("steps", 20))
        seed = p.get("seed")
        if seed is None:
            seed = random.randrange(2**32)
        payload = {
            "prompt": intent.prompt, "negative_prompt": p.get("negative_prompt") or "",
            "width": p.get("width", 512), "height": p.get("height", 512), "steps": steps,
            "cfg_scale": p.get("guidance", 7.5), "seed": int(seed), "batch_size": 1, "n_iter": 1,
            "send_images": True, "save_images": False,
        }
        if opts.get("sampler"):
            payload["sampler_name"] = opts["sampler"]
        if opts.get("model"):
            payload["override_settings"] = {"sd_model_checkpoint": opts["model"]}
            payload["override_settings_restore_afterwards"] = False
        interval = float(opts.get("progress_interval_s", 0.5))
        result: dict = {}
        last_step = 0

        async with remote_http.client(self, self.url, read_default=600.0) as c:

            async def poll() -> None:
                nonlocal last_step
                while True:
                    try:
                        resp = await c.get("/sdapi/v1/progress", params={"skip_current_image": "true"}, timeout=10.0)
                        state = (resp.json().get("state") or {}) if resp.status_code == 200 else {}
                    except (httpx.HTTPError, ValueError, AttributeError):
                        state = {}  # progress is a nicety: a missed poll is not an error
                    step = int(state.get("sampling_step") or 0)
                    total = int(state.get("sampling_steps") or steps)
                    if total == steps and last_step < step <= steps:
                        last_step = step
                        await emit({"type": "progress", "step": step, "total": steps})
                    await trio.sleep(interval)  # the polling rate, not synchronisation

            async def generate(nursery: trio.Nursery) -> None:
                try:
                    result["data"] = await remote_http.post_json(c, "/sdapi/v1/txt2img", self.what, payload)
                except Exception as e:  # noqa: BLE001 - re-raised below, outside the nursery (no ExceptionGroup)
                    result["error"] = e
                finally:
                    nursery.cancel_scope.cancel()  # stop polling

            try:
                async with trio.open_nursery() as nursery:
                    if interval > 0:
                        nursery.start_soon(poll)
                    nursery.start_soon(generate, nursery)
            except BaseException:  # cancelled from outside (or the emit failed): stop the server's work too
                with trio.move_on_after(5) as cleanup:
                    cleanup.shield = True
                    try:
                        await c.post("/sdapi/v1/interrupt", timeout=5.0)
                    except Exception:  # noqa: BLE001 - best effort; the original error matters
                        pass
                raise
            if "error" in result:
                raise result["error"]
        data = result["data"]
        images = data.get("images") or []
        if not images:
            raise BackendError("remote_error", f"{self.what} returned no image")
        try:
            info = json.loads(data.get("info") or "{}")
        except ValueError:
            info = {}
        raw = base64.b64decode(images[0].split(",", 1)[-1])  # some forks prefix a data: URL

        png, size = remote_http.png_of(raw)
        if last_step < steps:
            await emit({"type": "progress", "step": steps, "total": steps})
        return {"image_png": png, "width": size[0], "height": size[1], "steps": steps,
                "seed": int(info.get("seed", seed)), "units": work_units(size[0], size[1], steps)}
