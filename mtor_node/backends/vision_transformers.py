"""Image + prompt → streamed text with a transformers image-text-to-text model.

Works with the models `AutoModelForImageTextToText` knows (LLaVA, LLaVA-NeXT, SmolVLM/Idefics3,
Qwen2-VL, PaliGemma, ...), through their own `AutoProcessor` and chat template.

Source: a hub id (e.g. ``HuggingFaceTB/SmolVLM-256M-Instruct``) or a local folder saved with
``save_pretrained`` (model + processor), resolved by `sources.resolve`.

Options: ``max_image_side`` (default 1024: the image's longest side is resized down to it before the
processor sees it), ``max_image_pixels`` (default 40 000 000: larger images are refused from their
header, before decoding, so a decompression bomb costs nothing), ``prompt_template`` (used only when
the processor has no chat template; default ``"USER: {image}\\n{prompt} ASSISTANT:"``),
``trust_remote_code`` (default false).

Intent params: ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, ``stop``, ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..intents import Intent
from . import sources
from ._media import DEFAULT_MAX_PIXELS, decode_image
from .base import Backend, BackendError, Emit, ThreadContext, run_in_thread
from .device import check_fits, pick_device, pick_dtype

DEFAULT_TEMPLATE = "USER: {image}\n{prompt} ASSISTANT:"


def checkpoint_bytes(path: Path) -> int:
    """Size of the weights in a checkpoint folder (safetensors, else .bin), for `check_fits`."""
    path = Path(path)
    return sum(f.stat().st_size for f in path.glob("*.safetensors")) or sum(f.stat().st_size for f in path.glob("*.bin"))


class TextPusher:
    """A transformers streamer: decodes the new tokens, cuts at stop strings, pushes text chunks."""

    def __init__(self, tokenizer, ctx: ThreadContext, stop: list[str]):
        self.tokenizer, self.ctx, self.stop = tokenizer, ctx, stop
        self.ids: list[int] = []
        self.sent = ""
        self.done = False
        self._prompt = True

    def _text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def _emit_upto(self, text: str) -> None:
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.ctx.push({"type": "chunk", "text": text[len(self.sent):]})
            self.sent = text

    def put(self, value) -> None:
        if self._prompt:  # generate() hands over the prompt first
            self._prompt = False
            return
        self.ctx.check()
        self.ids.extend(value.reshape(-1).tolist())
        text = self._text()
        for s in self.stop:
            cut = text.find(s)
            if cut != -1:
                text, self.done = text[:cut], True
        if not self.done:
            hold = max((len(s) - 1 for s in self.stop), default=0)  # could be the start of a stop string
            text = text[: len(text) - hold] if hold else text
            text = text.rstrip("\ufffd")  # a multi-byte character not complete yet
        self._emit_upto(text)

    def end(self) -> None:
        if not self.done:
            self._emit_upto(self._text())


class TransformersVision(Backend):
    kinds = ("vision",)

    def __init__(self, spec, cache_dir):
        super().__init__(spec, cache_dir)
        self.model = self.processor = self.tokenizer = None
        self.device, self.dtype = "cpu", None

    def load_sync(self, progress: Callable[[str, float | None], None]) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if not self.spec.source:
            raise BackendError("bad_config", f"model {self.spec.name!r} needs a source (a hub id or a folder)")
        path = sources.resolve(self.spec.source, progress)
        self.device = pick_device(self.spec)
        self.dtype = pick_dtype(self.spec, self.device)
        check_fits(self.spec, self.device, int(checkpoint_bytes(path) * 1.2))
        trust = bool(self.spec.options.get("trust_remote_code", False))
        progress(f"loading {path.name} on {self.device}", None)
        try:
            self.processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=trust)
            model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=self.dtype, trust_remote_code=trust)
        except (OSError, ValueError, KeyError) as e:
            raise BackendError("unavailable", f"could not load vision model from {path}: {e}") from e
        self.model = model.to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.torch = torch

    def unload_sync(self) -> None:
        self.model = self.processor = self.tokenizer = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict:
        return {"device": self.device, "dtype": str(self.dtype).removeprefix("torch.")}

    def _prompt_text(self, prompt: str) -> str:
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        image_token = getattr(self.processor, "image_token", None) or "<image>"
        template = str(self.spec.options.get("prompt_template", DEFAULT_TEMPLATE))
        return template.format(image=image_token, prompt=prompt)

    async def run(self, intent: Intent, emit: Emit) -> dict:
        if self.model is None:
            raise BackendError("not_loaded", f"model {self.spec.name!r} is not loaded")
        opts = self.spec.options
        max_side = int(opts.get("max_image_side", 1024))
        max_pixels = int(opts.get("max_image_pixels", DEFAULT_MAX_PIXELS))
        return await run_in_thread(lambda ctx: self._generate(intent, ctx, max_side, max_pixels), emit)

    def _generate(self, intent: Intent, ctx: ThreadContext, max_side: int, max_pixels: int) -> dict:
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch, p = self.torch, intent.params
        image = decode_image(intent.image, max_side=max_side, max_pixels=max_pixels)
        text = self._prompt_text(intent.prompt)
        inputs = self.processor(text=text, images=[image], return_tensors="pt")
        inputs = inputs.to(self.device)
        for key, value in inputs.items():
            if torch.is_floating_point(value):
                inputs[key] = value.to(self.dtype)
        prompt_len = int(inputs["input_ids"].shape[1])
        pusher = TextPusher(self.tokenizer, ctx, p.get("stop") or [])

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return pusher.done or ctx.stopped

        temperature, top_p = self.sampling(p)
        kwargs = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        if p.get("seed") is not None:
            torch.manual_seed(p["seed"])
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=p.get("max_tokens", 256), streamer=pusher,
                stopping_criteria=StoppingCriteriaList([_Stop()]), pad_token_id=pad, **kwargs,
            )
        ctx.check()
        new_tokens = int(out.shape[1] - prompt_len)
        finish = "stop" if pusher.done or new_tokens < p.get("max_tokens", 256) else "length"
        return {"text": pusher.sent, "units": new_tokens, "finish_reason": finish,
                "usage": {"prompt_tokens": prompt_len, "completion_tokens": new_tokens},
                "image_size": list(image.size)}
