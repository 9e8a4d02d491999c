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

UI_MODELS = {
    "echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 8, "default": True},
    "echo-vision": {"kind": "vision", "backend": "echo", "concurrency": 2, "default": True},
    "echo-imagine": {"kind": "imagine", "backend": "ui-echo", "concurrency": 2, "default": True},
    "echo-transcribe": {"kind": "transcribe", "backend": "echo", "concurrency": 2, "default": True},
    "echo-speak": {"kind": "speak", "backend": "ui-echo", "concurrency": 2, "default": True},
}


@pytest.fixture
async def ui_node(tmp_path):
    async with running_node(tmp_path / "node", UI_MODELS) as node:
        yield node
