"""The sysop's console in a real node: watchdog alerts pushed to pages when nothing serves imagine
(and when it is served again), the live log with level filter and search, richer stats."""

from __future__ import annotations

import json

import httpx
import trio
from trio_websocket import open_websocket_url

from tests.conftest import ECHO_MODELS, running_node


async def next_alert(ws, about: str, severity: str) -> dict:
    while True:
        m = json.loads(await ws.get_message())
        if m.get("type") == "alert" and m["about"] == about and m["severity"] == severity:
            return m


async def test_watchdog_alerts_logs_and_stats(tmp_path):
    async with running_node(tmp_path / "n", ECHO_MODELS) as node:
        sysop = {"X-Sysop-Token": node.sysop_token}
        ws_url = node.http_url.replace("http://", "ws://") + "/ws"
        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as c, open_websocket_url(ws_url) as ws, \
                open_websocket_url(ws_url) as plain:
            await ws.send_message(json.dumps({"type": "hello", "sysop_token": node.sysop_token}))
            await plain.send_message(json.dumps({"type": "hello", "sysop_token": "guess"}))
            with trio.fail_after(30):  # echo-chat serves chat; nothing serves imagine
                alert = await next_alert(ws, "imagine", "error")
            assert alert["audience"] == "sysop" and "no healthy worker serves imagine" in alert["message"]
            alerts = (await c.get("/api/v1/sysop/alerts", headers=sysop)).json()["alerts"]
            assert [a["about"] for a in alerts] == ["imagine"]
            assert (await c.get("/api/v1/sysop/alerts")).status_code == 403
            r = await c.post("/api/v1/models", headers=sysop, json={"name": "echo-img", "kind": "imagine", "backend": "echo"})
            assert r.status_code == 201
            with trio.fail_after(30):
                ok = await next_alert(ws, "imagine", "ok")
            assert "local:echo-img" in ok["message"]
            assert (await c.get("/api/v1/sysop/alerts", headers=sysop)).json()["alerts"] == []
            await plain.send_message(json.dumps({"type": "ping", "t": 1}))
            with trio.fail_after(10):  # a page without the token got no alert: its next message is the pong
                assert [json.loads(await plain.get_message())["type"] for _ in range(2)] == ["welcome", "pong"]

            # the live log: level filter, search, polling with after=
            r = (await c.get("/api/v1/sysop/logs", headers=sysop, params={"level": "WARNING", "search": "watchdog"})).json()
            assert any("no healthy worker serves imagine" in x["msg"] for x in r["logs"])
            assert all(x["level"] in ("WARNING", "ERROR", "CRITICAL") for x in r["logs"])
            later = (await c.get("/api/v1/sysop/logs", headers=sysop, params={"after": r["last"], "search": "watchdog"})).json()
            assert all(x["seq"] > r["last"] for x in later["logs"])
            assert (await c.get("/api/v1/sysop/logs", headers=sysop, params={"level": "LOUD"})).status_code == 400

            for user in ("ann", "bob"):
                res = await c.post("/api/v1/intents", json={"kind": "chat", "prompt": "hello there", "user": user})
                assert res.status_code == 200
            st = (await c.get("/api/v1/sysop/stats", headers=sysop)).json()
            assert st["per_kind"]["chat"]["total"] == 2 and st["per_kind"]["chat"]["done"] == 2
            assert st["per_kind"]["chat"]["avg_ms"] is not None and st["lifetime"]["queries"] == 2
            assert st["lifetime"]["users_with_queries"] == 2 and st["most_users_at_once"]["count"] >= 1
