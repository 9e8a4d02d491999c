"""The Sysop tab in a real browser (Debian chromium) against a real node: the watchdog's alert shows
when nothing serves imagine and goes when the sysop adds an imagine model in the page; models are
loaded, unloaded and removed from the tab; lifetime stats per kind; the live log with level filter
and search (issue 17)."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import ECHO_MODELS, running_node
from tests.ui.pagekit import SHOTS, with_browser

pytestmark = pytest.mark.slow


async def test_sysop_tab_alerts_models_stats_and_live_log(tmp_path):
    async with running_node(tmp_path / "n", ECHO_MODELS) as node:  # echo chat only: nothing serves imagine
        def scenario(page):
            page.click("#tab-sysop")
            page.wait_for_selector("#sysop-models tbody td:has-text('needs the sysop token'), #sysop-msg:has-text('sysop token')")
            page.fill("#sysop-token", node.sysop_token)
            page.dispatch_event("#sysop-token", "change")
            # the watchdog's verdict: read at refresh or pushed over the WebSocket (3 s grace, every 5 s)
            page.click("#sysop-refresh")
            page.wait_for_selector("#sysop-alerts li[data-severity=error][data-about=imagine]", timeout=40_000)
            assert "no healthy worker serves imagine" in page.inner_text("#sysop-alerts")

            # models: the node's own are listed; add an imagine model in the page, the alert goes
            page.wait_for_selector("#sysop-models tbody tr[data-model]")
            names = page.locator("#sysop-models tbody tr[data-model]").evaluate_all("rs => rs.map(r => r.dataset.model)")
            assert set(names) == set(ECHO_MODELS)
            page.fill("#model-name", "echo-img")
            page.select_option("#model-kind", "imagine")
            page.fill("#model-backend", "echo")
            page.click("#model-add button[type=submit]")
            page.wait_for_selector("#sysop-models tbody tr[data-model=echo-img]")
            page.wait_for_selector("#sysop-alerts li:has-text('No alerts')", timeout=40_000)
            # load, then unload, then remove it from the tab
            page.click("#sysop-models tr[data-model=echo-img] button:text-is('load')")
            page.wait_for_selector("#sysop-models tr[data-model=echo-img] td:text-is('ready')")
            page.click("#sysop-models tr[data-model=echo-img] button:text-is('unload')")
            page.wait_for_selector("#sysop-models tr[data-model=echo-img] button:text-is('load')")
            assert page.locator("#sysop-models tr[data-model=echo-img] td:text-is('ready')").count() == 0
            page.click("#sysop-models tr[data-model=echo-img] button:text-is('remove')")
            page.wait_for_selector("#sysop-models tr[data-model=echo-img]", state="detached")

            # stats: lifetime totals in words
            assert "users ever" in page.inner_text("#stats-lifetime")

            # the live log: the watchdog's warning is found by level and search; a search for nothing says so
            page.select_option("#log-level", "WARNING")
            page.fill("#log-search", "watchdog")
            page.wait_for_selector("#sysop-log li[data-level=WARNING]:has-text('no healthy worker serves imagine')")
            levels = page.locator("#sysop-log li[data-level]").evaluate_all("ls => ls.map(l => l.dataset.level)")
            assert levels and all(lv in ("WARNING", "ERROR", "CRITICAL") for lv in levels)
            page.fill("#log-search", "no line says this 7f3a")
            page.wait_for_selector("#sysop-log li.empty")
            page.screenshot(path=str(SHOTS / "sysop-console.png"), full_page=True)

        with trio.fail_after(150):
            await trio.to_thread.run_sync(lambda: with_browser(node.http_url, scenario, timeout_ms=20_000))
        assert "echo-img" not in node.models.states  # removed for real, not only from the page
