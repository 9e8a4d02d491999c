"""UI test fixtures: a real node with echo models for every kind, and a real browser (Debian chromium)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mtor_node.backends import BACKENDS
from tests.conftest import running_node

BACKENDS.setdefault("ui-echo", "tests.ui.ui_backend:UiEcho")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# The node checks that a model's source exists before offering it; the test backend needs none, so
# point it at its own module.
UI_ECHO_SOURCE = "path:" + str(Path(__file__).with_name("ui_backend.py"))

UI_MODELS = {
    "echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 8, "default": True},
    "echo-vision": {"kind": "vision", "backend": "echo", "concurrency": 2, "default": True},
    "echo-imagine": {"kind": "imagine", "backend": "ui-echo", "source": UI_ECHO_SOURCE, "concurrency": 2, "default": True},
    "echo-transcribe": {"kind": "transcribe", "backend": "echo", "concurrency": 2, "default": True},
    "echo-speak": {"kind": "speak", "backend": "ui-echo", "source": UI_ECHO_SOURCE, "concurrency": 2, "default": True},
}


@pytest.fixture
async def ui_node(tmp_path):
    async with running_node(tmp_path / "node", UI_MODELS) as node:
        yield node


# ---- a real browser ------------------------------------------------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
BROWSER_TIMEOUT_MS = 15_000


def browser_run(url: str, scenario, name: str, extra_args: list[str] = (), timeout_ms: int = BROWSER_TIMEOUT_MS):
    """Run `scenario(page)` in Debian's chromium (sync Playwright: call it in a thread, off the trio loop
    that serves the node). A screenshot lands in test-artifacts/ whether it passes or fails."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + list(extra_args), timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(timeout_ms)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "favicon" not in m.text else None)
            page.goto(url)
            page.wait_for_selector("#conn[data-state=open]")
            try:
                return scenario(page)
            finally:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                assert not [e for e in errors if "Failed to load resource" not in e], errors
        finally:
            browser.close()


async def in_browser(url: str, scenario, name: str, extra_args: list[str] = (), timeout_s: float = 90):
    import trio

    with trio.fail_after(timeout_s):
        return await trio.to_thread.run_sync(lambda: browser_run(url, scenario, name, extra_args))


BROWSER_MODELS = {**UI_MODELS, "echo-chat": {**UI_MODELS["echo-chat"], "options": {"delay_s": 0.05}}}


@pytest.fixture
async def browser_node(tmp_path):
    """Chat answers word by word, 50 ms apart: slow enough to see a stream arrive in the page."""
    async with running_node(tmp_path / "node", BROWSER_MODELS) as node:
        yield node
