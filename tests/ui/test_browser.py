"""The page in a real browser (Debian chromium via Playwright) against a real node (echo models)."""

from __future__ import annotations

import base64

import pytest

from tests.ui.conftest import FAKE_MEDIA, in_browser
from tests.ui.pagekit import SHOTS
from tests.ui.ui_backend import tiny_png

pytestmark = pytest.mark.slow

ANSWER = ".msg.answer"


async def test_chat_streams_markdown_safely(browser_node):
    def scenario(page):
        # streaming: record every partial text shown while the answer is still pending
        page.evaluate("""() => { window.partials = [];
            new MutationObserver(() => { const a = document.querySelector('.msg.answer');
                if (a && a.dataset.state === 'pending') window.partials.push(a.querySelector('.body').textContent); })
              .observe(document.querySelector('#chat-log'), {subtree: true, childList: true, characterData: true}); }""")
        page.fill("#chat-input", "hello **bold** world and `code` <img src=x onerror=alert(1)> more words here")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector(f"{ANSWER}[data-state=done]")
        partials = [p for p in page.evaluate("window.partials") if p]
        assert len(set(partials)) >= 3, partials  # the answer grew word by word
        answer = page.locator(ANSWER).first
        assert "hello bold world and code" in answer.inner_text()
        assert answer.locator("strong").inner_text() == "bold"
        assert answer.locator("code").inner_text() == "code"
        assert answer.locator("img").count() == 0  # the model's markup is text, never HTML
        assert "<img" in answer.locator(".body").inner_text()
        meta = answer.locator(".meta").inner_text()
        assert "cost free" in meta and "time" in meta
        page.wait_for_selector("#conv-list li")  # the conversation is kept in the sidebar
        # Esc stops a running answer
        page.fill("#chat-input", " ".join(["word"] * 60))
        page.keyboard.press("Control+Enter")
        page.wait_for_function("() => document.querySelectorAll('.msg.answer')[1]?.dataset.state === 'pending' && "
                               "document.querySelectorAll('.msg.answer')[1].querySelector('.body').textContent.length > 0",
                               polling=50)
        page.keyboard.press("Escape")
        page.wait_for_selector(f"{ANSWER}[data-state=cancelled]")
        # and so does the composer's Stop button, shown only while an answer runs
        assert page.is_hidden("#chat-stop")
        page.fill("#chat-input", " ".join(["more"] * 60))
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelectorAll('.msg.answer')[2]?.querySelector('.body').textContent.length > 0", polling=50)
        page.click("#chat-stop")
        page.wait_for_function("() => document.querySelectorAll('.msg.answer[data-state=cancelled]').length === 2", polling=50)
        assert page.is_hidden("#chat-stop")
        # dark mode and the nickname
        page.click("#dark")
        dark = page.evaluate("document.documentElement.classList.contains('dark')")
        page.keyboard.press("Control+d")
        assert page.evaluate("document.documentElement.classList.contains('dark')") != dark
        page.fill("#nickname", "Dave")
        page.press("#nickname", "Enter")
        page.wait_for_selector(".broadcast:has-text('you are now Dave')")

    await in_browser(browser_node.http_url, scenario, "chat")
    users = {u["id"]: u for u in browser_node.store.users()}
    assert any(u["nickname"] == "Dave" for u in users.values())


async def test_vision_upload(ui_node, tmp_path):
    img = tmp_path / "square.png"
    img.write_bytes(tiny_png(16, 16, (200, 30, 30)))
    b64 = base64.b64encode(tiny_png(8, 8, (30, 200, 30))).decode()

    def scenario(page):
        page.click("button[data-tab=vision]")
        page.set_input_files("#vision-file", str(img))
        page.wait_for_selector("#vision-preview:not([hidden])")
        page.fill("#vision-prompt", "What colour is the square?")
        page.click("#vision-send")
        page.wait_for_selector(f"#vision-log {ANSWER}[data-state=done]")
        assert page.locator(f"#vision-log {ANSWER} .body").inner_text() == "What colour is the square?"  # echo
        assert page.locator("#vision-log .msg.user img").count() == 1
        # drag and drop: a real DataTransfer with a PNG file, dropped on the zone
        before = page.get_attribute("#vision-preview", "src")
        page.evaluate("""() => { const png = atob('%s'); const bytes = Uint8Array.from(png, c => c.charCodeAt(0));
            const dt = new DataTransfer(); dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
            document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); }""" % b64)
        page.wait_for_function("(b) => document.querySelector('#vision-preview').src !== b", arg=before, polling=50)
        # the webcam (chromium's fake camera): on, capture a frame into the preview, off
        before = page.get_attribute("#vision-preview", "src")
        page.click("#webcam-toggle")
        page.wait_for_function("() => document.querySelector('#webcam').videoWidth > 0", polling=50)
        page.click("#webcam-snap")
        page.wait_for_function("(b) => document.querySelector('#vision-preview').src !== b", arg=before, polling=50)
        page.click("#webcam-toggle")
        page.wait_for_selector("#webcam[hidden]", state="attached")

    await in_browser(ui_node.http_url, scenario, "vision", FAKE_MEDIA)


async def test_imagine_shows_an_image(ui_node):
    def scenario(page):
        page.click("button[data-tab=imagine]")
        page.fill("#imagine-prompt", "a lighthouse at dusk")
        page.select_option("#imagine-size", "64x64")
        page.click("#imagine-send")
        page.wait_for_function("() => { const i = document.querySelector('#gallery img'); return i && i.complete && i.naturalWidth > 0; }",
                               polling=50)
        assert "a lighthouse at dusk" in page.locator("#gallery figcaption").inner_text()
        assert page.locator("#imagine-progress").is_hidden()

    await in_browser(ui_node.http_url, scenario, "imagine")


async def test_push_to_talk_transcribes_and_asks(ui_node):
    def scenario(page):
        page.click("button[data-tab=voice]")
        page.hover("#ptt")
        page.mouse.down()
        page.wait_for_selector("#ptt[aria-pressed=true]")
        page.wait_for_timeout(700)  # the length of the recording, not a synchronisation
        page.mouse.up()
        page.wait_for_selector("#voice-log .msg.user:has-text('bytes of audio')")
        page.click("button[data-tab=chat]")
        page.wait_for_selector(f"#chat-log {ANSWER}[data-state=done]")
        assert "bytes of audio" in page.locator(f"#chat-log {ANSWER} .body").inner_text()

    await in_browser(ui_node.http_url, scenario, "push-to-talk", FAKE_MEDIA)


async def test_sysop_bans_a_user_and_broadcasts(ui_node):
    token = ui_node.sysop_token

    def scenario(page):
        page.fill("#chat-input", "first words")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector(f"{ANSWER}[data-state=done]")
        me = page.evaluate("window.mtor.user")
        page.click("button[data-tab=sysop]")
        page.fill("#sysop-token", token)
        page.press("#sysop-token", "Enter")
        page.dispatch_event("#sysop-token", "change")
        row = page.locator(f"#users tr[data-user='{me}']")
        row.locator("button:has-text('ban')").click()
        page.wait_for_selector(f"#users tr[data-user='{me}'] td:has-text('banned')")
        page.wait_for_selector("#stats-chart")
        page.fill("#broadcast-text", "the realm restarts at noon")
        page.click("#broadcast-send")
        page.wait_for_selector(".broadcast[data-from=sysop]:has-text('the realm restarts at noon')")
        page.click("#anchor-now")
        page.wait_for_selector("#sysop-msg:has-text('not available')")
        page.click("button[data-tab=chat]")
        page.fill("#chat-input", "am I still here?")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector(f"{ANSWER}.error:has-text('banned')")
        return me

    me = await in_browser(ui_node.http_url, scenario, "sysop")
    assert ui_node.store.is_banned(me)


async def test_grid_of_a_two_peer_realm_and_the_wallet(tmp_path):
    """Two workers and this broker in a realm (real libp2p, in this process): the grid lists both with
    their prices and health; the wallet shows the ledger's balance and entries."""
    from contextlib import AsyncExitStack

    import httpx
    import trio

    from tests.conftest import running_node
    from tests.ui.conftest import UI_MODELS

    echo = {"echo-chat": {"kind": "chat", "backend": "echo", "concurrency": 4, "default": True}}
    async with AsyncExitStack() as stack:
        workers, first = [], None
        for i, price in enumerate((2000, 3000)):
            w = await stack.enter_async_context(running_node(
                tmp_path / f"w{i}", echo, p2p={"enabled": True, "peers": [first] if first else []},
                node={"roles": ["worker"]}, prices={"chat": price}))
            first = first or w.federation.listen_addrs[0]
            workers.append(w)
        broker = await stack.enter_async_context(running_node(
            tmp_path / "broker", UI_MODELS, p2p={"enabled": True, "peers": [first]}, ledger={"dev_grant": 12_500_000}))
        with trio.fail_after(30):  # both workers' offers have reached the broker
            while not all(w.peer_id in {p["peer_id"] for p in broker.federation.peers.snapshot() if p["fresh"]} for w in workers):
                await trio.sleep(0.05)

        def scenario(page):
            page.click("button[data-tab=grid]")
            for w in workers:
                page.wait_for_selector(f"#peers tr[data-peer='{w.peer_id}']")
            rows = page.locator("#peers tbody tr")
            assert rows.count() == 2
            text = page.locator("#peers tbody").inner_text()
            assert "chat 0.002 $9000" in text and "chat 0.003 $9000" in text
            page.wait_for_function("() => document.querySelector('#peers tbody').textContent.includes(' ms')", polling=100)  # RTT measured
            assert page.locator("#models tbody tr").count() == 5
            # the realm at a glance: this node and both workers on the map, three sparklines per peer
            # once two refreshes are in, and the cheapest chat price drawn per kind
            page.wait_for_function("() => document.querySelectorAll('#realm-map .map-node').length === 3", polling=100)
            assert page.locator("#peers tbody tr").first.locator("svg.spark").count() == 3
            page.wait_for_function("() => document.querySelector('#peers tbody tr svg.spark path')?.getAttribute('d')?.includes('L')", polling=100, timeout=20_000)
            page.wait_for_selector("#price-chart svg path title:text-is('chat')", state="attached")
            page.screenshot(path=str(SHOTS / "grid-realm.png"))
            page.click("button[data-tab=wallet]")
            page.wait_for_selector("#wallet-body:not([hidden])")
            page.wait_for_function("() => document.querySelector('#wallet-balance').textContent === '12.500000'", polling=100)
            page.wait_for_selector("#ledger tbody tr:has-text('grant')")
            page.wait_for_selector("#balance-chart svg path[stroke]")
            page.fill("#ledger-search", "grant")
            page.wait_for_function("() => document.querySelectorAll('#ledger tbody tr').length === 1", polling=50)
            page.fill("#ledger-search", "no such entry")
            page.wait_for_selector("#ledger-count:has-text('0 of')")
            assert page.locator("#ledger tbody tr:not(.empty-row)").count() == 0
            assert "No entry matches" in page.locator("#ledger tbody").inner_text()
            page.fill("#ledger-search", "")
            page.screenshot(path=str(SHOTS / "wallet.png"))

        await in_browser(broker.http_url, scenario, "grid")
        async with httpx.AsyncClient(base_url=broker.http_url) as c:
            text = (await c.get("/metrics")).text
        # numbers as prometheus-client writes them (12500000 is 1.25e+07): read them back with its parser
        from prometheus_client.parser import text_string_to_metric_families

        values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}
        assert values["mtor_peers"] == 2 and values["mtor_wallet_balance_micro"] == 12_500_000
