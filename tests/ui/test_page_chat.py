"""Conversations in a real browser (Debian chromium) against a real node with echo models: kept in
IndexedDB across a reload; regenerate, edit-and-resend, continue after a truncated answer, export as
Markdown and JSON, rename, search, delete; Back/Forward follow the tabs; an empty Send says why;
a missing vision/imagine model says which, why and the fixing command (no raw loader text up front)."""

from __future__ import annotations

import json

import pytest
import trio

from tests.conftest import running_node
from tests.ui.conftest import UI_MODELS
from tests.ui.pagekit import SHOTS, with_browser

pytestmark = pytest.mark.slow

ANSWER = "#chat-log .msg.answer"


def answers(page) -> list[str]:
    return page.locator(f"{ANSWER} .body").all_inner_texts()


async def test_conversations_survive_a_reload_and_can_be_reworked(ui_node):
    def scenario(page):
        # an empty Send gives feedback instead of doing nothing
        page.click("#chat-send")
        page.wait_for_selector("#chat-hint:has-text('Type a message first')")
        assert page.get_attribute("#chat-input", "aria-invalid") == "true"

        # per-chat settings: 3 tokens, so the echo stops early and the page says so
        page.click("#settings-toggle")
        page.fill("#chat-max-tokens", "3")
        page.fill("#chat-system", "You are terse.")
        page.dispatch_event("#chat-max-tokens", "change")
        page.fill("#chat-input", "one two three four five six")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"{ANSWER}[data-state=done] .notice:has-text('limit of 3 tokens')")
        assert answers(page) == ["one two three"]
        meta = page.locator(f"{ANSWER} .meta").inner_text()
        assert "cost free" in meta and "answered by" in meta

        # continue: the same answer grows (the echo repeats the first 3 words of the continue request)
        page.click(f"{ANSWER} .notice button.continue")
        page.wait_for_function("() => document.querySelector('#chat-log .msg.answer .body').textContent.split(' ').length === 6", polling=50)
        assert page.locator(ANSWER).count() == 1

        # regenerate: the answer is asked again and replaces the old one
        page.evaluate("document.querySelector('#chat-log .msg.answer').dataset.old = '1'")
        page.click(f"{ANSWER} button.regenerate")
        page.wait_for_selector(f"{ANSWER}[data-state=done]:not([data-old])")
        assert answers(page) == ["one two three"]

        # edit and resend: the question changes, the answer follows
        page.click("#chat-log .edit-btn")
        page.fill("#chat-log textarea.edit", "edited question here")
        page.click("#chat-log .save-edit")
        page.wait_for_selector(f"{ANSWER}[data-state=done]:has-text('edited question here')")
        assert page.locator("#chat-log .msg.user").all_inner_texts() == ["edited question here"]

        # rename
        page.click("#conv-rename")
        page.fill("input[aria-label='chat title']", "Renamed chat")
        page.keyboard.press("Enter")
        page.wait_for_selector("#conv-title:has-text('Renamed chat')")
        page.evaluate("window.mtor.chat.flush()")
        page.wait_for_selector("#conv-list button[aria-current=true]:has-text('Renamed chat')")

        # export as Markdown and JSON: the downloads hold the conversation
        with page.expect_download() as dl:
            page.click("#export-json")
        exported = json.loads(open(dl.value.path()).read())
        assert dl.value.suggested_filename == "renamed-chat.json"
        assert [m["content"] for m in exported["messages"]] == ["edited question here", "edited question here"]
        assert exported["settings"]["max_tokens"] == 3 and exported["settings"]["system"] == "You are terse."
        with page.expect_download() as dl:
            page.click("#export-md")
        md = open(dl.value.path()).read()
        assert md.startswith("# Renamed chat") and "## You\n\nedited question here" in md and "You are terse." in md

        # kept across a reload: the sidebar, the messages and the chat's own settings
        page.reload()
        page.wait_for_selector("#conn[data-state=open]")
        page.wait_for_selector("#conv-list button:has-text('Renamed chat')")
        page.wait_for_selector(f"{ANSWER}[data-state=done]")
        assert page.locator("#chat-log .msg.user").all_inner_texts() == ["edited question here"]
        assert page.input_value("#chat-max-tokens") == "3"

        # a second chat; search finds each by its words; delete takes two clicks
        page.click("#chat-clear")
        assert page.locator("#chat-log .msg").count() == 0 and page.is_visible("#chat-welcome")
        page.fill("#chat-input", "lighthouses at dusk")
        page.keyboard.press("Enter")
        page.wait_for_selector(f"{ANSWER}[data-state=done]")
        page.evaluate("window.mtor.chat.flush()")
        page.wait_for_function("() => document.querySelectorAll('#conv-list li').length === 2", polling=50)
        page.fill("#conv-search", "lighthouse")
        page.wait_for_function("() => document.querySelectorAll('#conv-list li').length === 1", polling=50)
        page.fill("#conv-search", "no such words")
        page.wait_for_selector("#conv-empty:has-text('No chat mentions')")
        page.fill("#conv-search", "")
        page.click("#conv-delete")
        assert page.locator("#conv-list li").count() == 2  # the first click only asks
        page.click("#conv-delete")
        page.wait_for_function("() => document.querySelectorAll('#conv-list li').length === 1", polling=50)
        page.reload()
        page.wait_for_selector("#conv-list button:has-text('Renamed chat')")
        assert page.locator("#conv-list li").count() == 1

        # the imagine gallery is kept too, with its prompt and cost; "remove" forgets a picture
        page.click("#tab-imagine")
        page.fill("#imagine-prompt", "a kept lighthouse")
        page.select_option("#imagine-size", "64x64")
        page.click("#imagine-send")
        page.wait_for_selector("#gallery figure[data-id] img")
        page.fill("#imagine-prompt", "a forgotten lighthouse")
        page.click("#imagine-send")
        page.wait_for_function("() => document.querySelectorAll('#gallery figure[data-id]').length === 2", polling=50)
        page.locator("#gallery figure:has-text('a forgotten lighthouse') button.remove").click()
        page.wait_for_function("() => document.querySelectorAll('#gallery figure').length === 1", polling=50)
        page.reload()
        page.wait_for_selector("#conn[data-state=open]")
        page.wait_for_selector("#gallery figure[data-id] img", state="attached")
        assert page.locator("#gallery figure").count() == 1
        kept = page.locator("#gallery figure").inner_text()
        assert "a kept lighthouse" in kept and "cost free" in kept

        # Back and Forward follow the tabs; the tab list answers the arrow keys
        page.click("#tab-chat")
        page.click("#tab-grid")
        page.click("#tab-wallet")
        assert page.url.endswith("#wallet")
        page.go_back()
        page.wait_for_selector("#grid:not([hidden])")
        assert page.get_attribute("#tab-grid", "aria-selected") == "true"
        page.go_back()
        page.wait_for_selector("#chat:not([hidden])")
        page.go_forward()
        page.wait_for_selector("#grid:not([hidden])")
        page.focus("#tab-grid")
        page.keyboard.press("ArrowRight")
        page.wait_for_selector("#wallet:not([hidden])")
        assert page.evaluate("document.activeElement.id") == "tab-wallet"
        page.screenshot(path=str(SHOTS / "chat-flow.png"))

    with trio.fail_after(120):
        await trio.to_thread.run_sync(lambda: with_browser(ui_node.http_url, scenario, downloads=True))
    chats = [h for h in ui_node.store.history(None, 50) if h["kind"] == "chat"]
    assert len(chats) == 5  # first, continue, regenerate, edited, second chat: each really asked
    assert len([h for h in ui_node.store.history(None, 50) if h["kind"] == "imagine"]) == 2


async def test_a_missing_model_says_what_to_do(tmp_path, monkeypatch):
    """Vision and imagine models on the hub that this offline node never downloaded."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = {"echo-chat": UI_MODELS["echo-chat"],
              "vision-missing": {"kind": "vision", "backend": "transformers-vision", "source": "nobody-here/no-such-vision", "default": True},
              "imagine-missing": {"kind": "imagine", "backend": "diffusers", "source": "nobody-here/no-such-imagine", "default": True}}
    async with running_node(tmp_path / "node", models) as node:
        def scenario(page):
            page.click("#tab-imagine")
            page.wait_for_selector("#model-note-imagine:not([hidden])")
            note = page.locator("#model-note-imagine").inner_text()
            assert "mtor-node models pull nobody-here/no-such-imagine" in note and "not downloaded" in note
            page.fill("#imagine-prompt", "a lighthouse")
            page.click("#imagine-send")
            page.wait_for_selector("#gallery figure.error .fix")
            assert page.locator("#gallery img").count() == 0  # no broken image
            fix = page.locator("#gallery figure.error .fix")
            assert "mtor-node models pull" in fix.inner_text()
            assert page.locator("#gallery figure.error .fix details").get_attribute("open") is None  # raw text folded away
            page.click("#tab-vision")
            page.wait_for_selector("#model-note-vision:not([hidden]):has-text('nobody-here/no-such-vision')")
            page.screenshot(path=str(SHOTS / "missing-model.png"))

        with trio.fail_after(90):
            await trio.to_thread.run_sync(lambda: with_browser(node.http_url, scenario))
