"""Realm apps in the page (apps.js): a row per app on the Voice tab, off until configured; the
weather app answers from the Open-Meteo stand-in on 127.0.0.1 (tests/apps/open_meteo_standin.py)."""

from __future__ import annotations

from tests.apps.open_meteo_standin import open_meteo
from tests.conftest import ECHO_MODELS, running_node
from tests.ui.conftest import in_browser


async def test_apps_row_runs_weather_and_shows_mail_off(tmp_path):
    with open_meteo() as (srv, urls):
        async with running_node(tmp_path / "n", ECHO_MODELS, weather={"enabled": True, **urls}) as node:
            def scenario(page):
                page.click("button[data-tab=voice]")
                weather = page.wait_for_selector("#apps button[data-app=weather]")
                assert weather.is_enabled()
                assert page.locator("#apps button[data-app=mail]").is_disabled()
                assert "configure [mail] in mtor.toml" in page.locator("#apps").inner_text()
                page.fill("#apps input[aria-label^='weather']", "New York")
                weather.click()
                answer = page.wait_for_selector("#voice-log .msg.answer[data-app=weather][data-state=done]")
                assert answer.inner_text().startswith("New York, United States: 3°C, light rain")

            await in_browser(node.http_url, scenario, "apps-row")
        assert srv.requests[0][1]["name"] == "New York"
