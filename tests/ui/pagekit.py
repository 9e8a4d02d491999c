"""Helpers for the page tests: one real chromium per test module run, pages reused across sizes and
themes, axe-core (vendored in tests/ui/vendor, a test asset the node never serves) run inside the page."""

from __future__ import annotations

from pathlib import Path

from tests.ui.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

AXE = Path(__file__).with_name("vendor") / "axe.min.js"
SHOTS = ARTIFACTS / "page"
TABS = ["chat", "vision", "imagine", "voice", "grid", "wallet", "sysop"]
SIZES = [(360, 740), (390, 844), (1280, 800), (1920, 1080)]  # 360: the narrowest phone we promise


def with_browser(url: str, scenario, *, viewport=(1280, 800), timeout_ms: int = 15_000, downloads: bool = False):
    """Run scenario(page) in one chromium; page errors and console errors fail the test."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=downloads)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "favicon" not in m.text else None)
            page.goto(url)
            page.wait_for_selector("#conn[data-state=open]")
            try:
                return scenario(page)
            finally:
                assert not [e for e in errors if "Failed to load resource" not in e], errors
        finally:
            browser.close()


def horizontal_overflow(page) -> int:
    """How many pixels the document is wider than the viewport (0: no sideways scroll)."""
    return page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth")


def set_theme(page, dark: bool) -> None:
    if page.evaluate("document.documentElement.classList.contains('dark')") != dark:
        page.click("#dark")
    assert page.evaluate("document.documentElement.classList.contains('dark')") == dark


def axe_violations(page, impacts=("serious", "critical")) -> list[dict]:
    """axe-core's WCAG 2.x A/AA checks of what is visible now; only violations of the given impact."""
    if not page.evaluate("() => !!window.axe"):
        page.evaluate(AXE.read_text())  # evaluated through the debugger protocol: not subject to the page's CSP
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                                           resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').slice(0, 200))}));
    }""")
    return [v for v in result if v["impact"] in impacts]
