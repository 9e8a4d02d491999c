"""federation/kinds.py is the one kind registry: every user of kinds agrees with it, and the units a
backend reports are the units a quote counts (a 512x512, 20-step image quoted 20,000 µ is charged
20,000 µ, not 4)."""

from __future__ import annotations

import pytest

from federation import kinds
from federation.pricing import DEFAULT_PRICES, KINDS as PRICING_KINDS, PriceTable
from mtor_node.backends.echo import EchoBackend
from mtor_node.backends.imagine_diffusers import work_units
from mtor_node.backends.remote_openai import KINDS as OPENAI_KINDS
from mtor_node.config import KEYS
from mtor_node.intents import KINDS as INTENT_KINDS


def test_every_user_of_kinds_reads_the_registry():
    names = kinds.KIND_NAMES
    assert PRICING_KINDS == INTENT_KINDS == OPENAI_KINDS == EchoBackend.kinds == names
    assert {k.path for k in KEYS if k.section == "prices"} >= {f"prices.{n}" for n in names}
    assert DEFAULT_PRICES == kinds.default_prices() and DEFAULT_PRICES["vision.request"] == 2_000
    assert [d["kind"] for d in kinds.describe()] == list(names)


def test_imagine_units_are_pixel_steps_in_quote_and_backend():
    k = kinds.kind("imagine")
    params = {"width": 512, "height": 512, "steps": 20}
    assert k.estimate(params) == work_units(512, 512, 20) == k.per
    t = PriceTable()
    quote = t.quote("imagine", params)
    assert quote == 20_000
    assert t.charge("imagine", work_units(512, 512, 20), 1.0, quoted=quote) == quote
    # a turbo model that ran 4 of the 20 steps is charged a fifth, from the result's own fields
    out = {"image_png": b"\x89PNG", "width": 512, "height": 512, "steps": 4}
    assert k.settle_units(params, {}, out, work_units(512, 512, 4)) == 512 * 512 * 4
    assert t.charge("imagine", 512 * 512 * 4, 1.0, quoted=quote) == 4_000


@pytest.mark.parametrize("name,params,inputs,empty", [
    ("chat", {"max_tokens": 50}, {}, {"text": ""}),
    ("vision", {"max_tokens": 50}, {}, {}),
    ("imagine", {"width": 64, "height": 64, "steps": 2}, {}, {"image_png": b""}),
    ("transcribe", {}, {"audio": b"x" * 8000}, {}),
    ("speak", {}, {"prompt": "hello there"}, {"audio_wav": b""}),
])
def test_a_claim_beyond_the_result_is_clamped(name, params, inputs, empty):
    k = kinds.kind(name)
    assert k.max_units(params, inputs, empty) == 0  # an empty answer is worth nothing
    assert k.settle_units(params, inputs, empty, 10**9) == 0
    full = {"chat": {"text": "ok"}, "vision": {"text": "ok"}, "imagine": {"image_png": b"png"},
            "transcribe": {"text": "", "duration": 1.5}, "speak": {"audio_wav": b"RIFF"}}[name]
    est = k.estimate(params, inputs)
    assert 0 < k.settle_units(params, inputs, full, 10**9) <= est
    assert k.settle_units(params, inputs, full, "junk") == 0
    assert k.settle_units(params, inputs, full, -5) == 0


def test_chat_tokens_bounded_by_the_text():
    k = kinds.kind("chat")
    assert k.max_units({"max_tokens": 4096}, {}, {"text": "hi"}) == 2 + kinds.TOKEN_SLACK
    assert k.max_units({"max_tokens": 3}, {}, {"text": "a long answer indeed"}) == 3


def test_unknown_kind_names_the_kinds():
    with pytest.raises(kinds.UnitsError, match="kinds are chat, vision"):
        kinds.kind("teleport")
