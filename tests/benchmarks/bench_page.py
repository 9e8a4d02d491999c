"""The page's first load against its budget: all assets ≤ 300 KB uncompressed, time to interactive
≤ 1 s, measured in Debian's chromium against a real node on 127.0.0.1 (echo models).

Each round opens a fresh browser context (a cold cache) and loads the page; the same context then
loads it again (a warm cache), side by side. Time to interactive is the page's own
`performance.mark("mtor:interactive")`, set once every tab is wired (ui/static/js/app.js); the
connection mark is when the WebSocket is open. Bytes are the decoded (uncompressed) body sizes of
the navigation and of every resource the page fetched, from the Resource Timing API.

    python tests/benchmarks/bench_page.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.conftest import running_node  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, UI_MODELS  # noqa: E402

BUDGET_BYTES = 300 * 1024
BUDGET_TTI_MS = 1000

MEASURE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource').filter(r => !r.name.startsWith('ws'));
  const mark = (n) => (performance.getEntriesByName(n)[0] || {}).startTime ?? null;
  return {dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, tti: mark('mtor:interactive'), ws: mark('mtor:connected'),
          bytes: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0),
          assets: [[new URL(nav.name).pathname, nav.decodedBodySize], ...res.map(r => [new URL(r.name).pathname, r.decodedBodySize])]};
}"""


def measure(url: str, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    out = {"cold": [], "warm": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(rounds):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                for kind in ("cold", "warm"):
                    page.goto(url)
                    page.wait_for_function("() => performance.getEntriesByName('mtor:connected').length > 0", timeout=15_000)
                    out[kind].append(page.evaluate(MEASURE))
                context.close()
        finally:
            browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()

    async def run() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            async with running_node(Path(tmp) / "node", UI_MODELS) as node:
                return await trio.to_thread.run_sync(measure, node.http_url, args.rounds)

    r = trio.run(run)
    med = lambda kind, key: statistics.median(x[key] for x in r[kind])  # noqa: E731
    p90 = lambda kind, key: sorted(x[key] for x in r[kind])[int(0.9 * (len(r[kind]) - 1))]  # noqa: E731
    print(f"page load, {args.rounds} rounds, chromium, node on 127.0.0.1 (median; p90 in brackets)\n")
    print(f"| metric | cold cache | warm cache | warm/cold | budget | cold/budget |")
    print(f"|---|---|---|---|---|---|")
    for key, label in (("dcl", "DOMContentLoaded"), ("load", "load event"), ("tti", "time to interactive"), ("ws", "WebSocket open")):
        c, w = med("cold", key), med("warm", key)
        budget = f"{BUDGET_TTI_MS} ms" if key == "tti" else ""
        ratio = f"{c / BUDGET_TTI_MS:.2f}" if key == "tti" else ""
        print(f"| {label} | {c:.0f} ms ({p90('cold', key):.0f}) | {w:.0f} ms ({p90('warm', key):.0f}) | {w / c:.2f} | {budget} | {ratio} |")
    cb = r["cold"][0]["bytes"]
    print(f"| assets (uncompressed) | {cb / 1024:.1f} KB | {r['warm'][0]['bytes'] / 1024:.1f} KB | | {BUDGET_BYTES // 1024} KB | {cb / BUDGET_BYTES:.2f} |")
    print("\nassets of the first load:")
    for path, size in sorted(r["cold"][0]["assets"], key=lambda a: -a[1]):
        print(f"  {size / 1024:7.1f} KB  {path}")
    ok = cb <= BUDGET_BYTES and med("cold", "tti") <= BUDGET_TTI_MS
    print("\nwithin budget" if ok else "\nOVER BUDGET")


if __name__ == "__main__":
    main()
