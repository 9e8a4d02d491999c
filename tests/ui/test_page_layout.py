"""The page at phone, laptop and large-screen sizes in both themes, in Debian's chromium against a
real node (echo models, a dev ledger): no sideways scroll, every tab's main control on screen,
the chat composer docked at the bottom, and axe-core finds no serious or critical violations.
Screenshots of every tab at each size and theme land in test-artifacts/page/ (git-ignored)."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import running_node
from tests.ui.conftest import UI_MODELS
from tests.ui.pagekit import SHOTS, SIZES, TABS, axe_violations, horizontal_overflow, set_theme, with_browser

pytestmark = pytest.mark.slow

# the one control each tab exists for: it must be visible, inside the viewport, and enabled
MAIN_CONTROL = {"chat": "#chat-input", "vision": "#vision-send", "imagine": "#imagine-send", "voice": "#ptt",
                "grid": "#realm-map", "wallet": "#ledger-search", "sysop": "#sysop-token"}
AXE_SIZES = {(390, 844), (1280, 800)}  # axe at one phone and one desktop size keeps the test short


async def test_every_tab_at_every_size_and_theme(tmp_path):
    async with running_node(tmp_path / "node", UI_MODELS, ledger={"dev_grant": 12_500_000}) as node:

        def scenario(page):
            # some content, so the screenshots show the views in use
            page.fill("#chat-input", "Show me **markdown** and `code` in a longer answer that wraps on a phone screen")
            page.keyboard.press("Enter")
            page.wait_for_selector(".msg.answer[data-state=done]")
            page.click("#tab-imagine")
            page.fill("#imagine-prompt", "a lighthouse at dusk")
            page.select_option("#imagine-size", "64x64")
            page.click("#imagine-send")
            page.wait_for_selector("#gallery figure .seed, #gallery figure img")
            problems, seen = [], set()
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                for dark in (False, True):
                    set_theme(page, dark)
                    theme = "dark" if dark else "light"
                    for tab in TABS:
                        page.click(f"#tab-{tab}")
                        page.wait_for_selector(f"#{tab}:not([hidden])")
                        if tab == "grid":
                            page.wait_for_selector("#realm-map svg")
                        if tab == "wallet":
                            page.wait_for_selector("#ledger tbody tr")
                        where = f"{tab} {width}x{height} {theme}"
                        over = horizontal_overflow(page)
                        if over > 0:
                            problems.append(f"{where}: scrolls sideways by {over}px")
                        tabs_over = page.evaluate("() => { const t = document.querySelector('.tabs'); return t.scrollWidth - t.clientWidth; }")
                        if tabs_over > 0:
                            problems.append(f"{where}: the tab bar hides {tabs_over}px of tabs")
                        control = page.locator(MAIN_CONTROL[tab])
                        control.scroll_into_view_if_needed()
                        box = control.bounding_box()
                        if not box or box["x"] < 0 or box["x"] + box["width"] > width + 1 or box["y"] < 0 or box["y"] + box["height"] > height + 1:
                            problems.append(f"{where}: {MAIN_CONTROL[tab]} is off screen: {box}")
                        if tab == "chat" and width < 800 and not dark:  # the chat list is a drawer on a phone
                            page.click("#conv-toggle")
                            page.wait_for_selector("#conv-list li")
                            item = page.locator("#conv-list li button").first.bounding_box()
                            if not item or item["x"] < 0 or item["x"] + item["width"] > width + 1:
                                problems.append(f"{where}: the chat drawer does not show the chats: {item}")
                            page.screenshot(path=str(SHOTS / f"chat-drawer-{width}x{height}.png"))
                            page.keyboard.press("Escape")
                            page.wait_for_selector("#conv-side", state="hidden")
                        if tab == "chat":  # docked: the composer sits at the bottom of the window
                            composer = page.locator("#chat-form").bounding_box()
                            if composer["y"] + composer["height"] < height * 0.8:
                                problems.append(f"{where}: the composer is not docked at the bottom: {composer}")
                        if (width, height) == (1280, 800) and not dark:  # keyboard: Tab from the top reaches it
                            page.evaluate("document.activeElement && document.activeElement.blur()")
                            target = MAIN_CONTROL[tab].split()[0]
                            for presses in range(1, 80):
                                page.keyboard.press("Tab")
                                if page.evaluate("(sel) => document.activeElement === document.querySelector(sel)", target if tab != "grid" else "#peers, .table-wrap"):
                                    break
                            else:
                                problems.append(f"{where}: Tab never reaches {target}")
                        page.evaluate("document.querySelector('main').scrollTop = 0")
                        page.screenshot(path=str(SHOTS / f"{tab}-{width}x{height}-{theme}.png"))
                        if (width, height) in AXE_SIZES:
                            for v in axe_violations(page):
                                key = (v["id"], tab, theme)
                                if key not in seen:
                                    seen.add(key)
                                    problems.append(f"{where}: axe {v['impact']} {v['id']}: {v['help']} {v['nodes']}")
            return problems

        with trio.fail_after(240):
            problems = await trio.to_thread.run_sync(lambda: with_browser(node.http_url, scenario))
        assert not problems, "\n".join(problems)
