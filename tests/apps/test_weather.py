"""The weather app against a stand-in of Open-Meteo on 127.0.0.1 (see open_meteo_standin.py: the
public API cannot be reached from tests), through the node's HTTP route and the CLI, as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import trio

from mtor_node.apps import AppError, find
from mtor_node.apps.weather import place_of
from tests.apps.open_meteo_standin import open_meteo
from tests.conftest import free_port, running_node


def test_place_of_utterance():
    assert place_of("What's the weather in New York?", "") == "New York"
    assert place_of("weather Berlin", "") == "Berlin"
    assert place_of("weather for Paris today", "") == "Paris"
    assert place_of("weather", "Oslo") == "Oslo"
    assert place_of("what is the weather like", "") == ""


def cfg(urls: dict, **kw) -> dict:
    return {"weather.enabled": True, "weather.place": "", "weather.units": "celsius", "p2p.airgap": False,
            **{f"weather.{k}": v for k, v in urls.items()}, **kw}


async def test_forecast_spoken_and_structured():
    with open_meteo() as (srv, urls):
        a = await find("weather").run("what's the weather in Berlin", cfg(urls))
        assert a.data["place"] == "Berlin" and a.data["temperature"] == 3.4 and a.data["sky"] == "light rain"
        assert a.text == "Berlin, Germany: 3°C, light rain; today -1 to 5°C; 80% chance of rain; wind 15 km/h."
        assert a.say.startswith("In Berlin, it is 3 degrees with light rain") and "80 percent chance of rain" in a.say
        (p1, geo), (p2, fc) = srv.requests
        assert p1 == "/v1/search" and geo["name"] == "Berlin"
        assert p2 == "/v1/forecast" and float(fc["latitude"]) == 52.52437 and "temperature_2m" in fc["current"]
        # the configured place when the utterance names none; fahrenheit on request
        a = await find("weather").run("weather", cfg(urls, **{"weather.place": "New York", "weather.units": "fahrenheit"}))
        assert a.data["place"] == "New York" and a.data["temperature"] == 38.1 and "°F" in a.text
        assert srv.requests[-1][1]["temperature_unit"] == "fahrenheit"


async def test_clear_errors():
    w = find("weather")
    with open_meteo() as (srv, urls):
        with pytest.raises(AppError) as e:
            await w.run("weather in Atlantis", cfg(urls))
        assert e.value.code == "not_found" and "Atlantis" in e.value.message
        with pytest.raises(AppError) as e:
            await w.run("weather", cfg(urls))
        assert e.value.code == "bad_request" and "weather.place" in e.value.message
        n = len(srv.requests)
        with pytest.raises(AppError) as e:  # off until configured
            await w.run("weather in Berlin", cfg(urls, **{"weather.enabled": False}))
        assert e.value.code == "not_configured"
        with pytest.raises(AppError) as e:  # an air-gapped realm never calls out
            await w.run("weather in Berlin", cfg(urls, **{"p2p.airgap": True}))
        assert e.value.code == "airgapped" and len(srv.requests) == n
    for mode, code in (("garbage", "failed"), ("huge", "failed")):
        with open_meteo(mode) as (srv, urls):
            with pytest.raises(AppError) as e:
                await w.run("weather in Berlin", cfg(urls))
            assert e.value.code == code, e.value.message
    # offline: nothing listens there
    port = free_port()
    with pytest.raises(AppError) as e:
        await w.run("weather in Berlin", cfg({"geocoding_url": f"http://127.0.0.1:{port}/v1/search",
                                              "forecast_url": f"http://127.0.0.1:{port}/v1/forecast"}))
    assert e.value.code == "offline" and "cannot reach the geocoding service" in e.value.message


async def test_weather_through_the_node_and_the_cli(tmp_path):
    with open_meteo() as (srv, urls):
        async with running_node(tmp_path / "n", weather={"enabled": True, **urls}) as node:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=20) as c:
                apps = {a["name"]: a for a in (await c.get("/api/v1/apps")).json()["apps"]}
                assert apps["weather"]["available"] and not apps["mail"]["configured"]
                r = await c.post("/api/v1/apps/weather", json={"text": "weather in Berlin"})
                assert r.status_code == 200 and r.json()["data"]["place"] == "Berlin"
                r = await c.post("/api/v1/apps/mail", json={})
                assert r.status_code == 409 and r.json()["error"]["code"] == "not_configured"
                r = await c.post("/api/v1/apps/nope", json={})
                assert r.status_code == 404
                r = await c.post("/api/v1/apps/weather", json={"text": "x" * 501})
                assert r.status_code == 400
            cli = [sys.executable, "-m", "mtor_node", "app", "--data-dir", str(tmp_path / "n")]
            with trio.fail_after(60):
                out = await trio.run_process(cli + ["weather", "New York"], capture_stdout=True, capture_stderr=True)
            assert out.stdout.decode().startswith("New York, United States: 3°C, light rain")
            with trio.fail_after(60):
                out = await trio.run_process(cli + ["weather", "Atlantis"], capture_stdout=True, capture_stderr=True, check=False)
            assert out.returncode == 4 and "Atlantis" in out.stderr.decode()
            with trio.fail_after(60):
                out = await trio.run_process(cli + ["list"], capture_stdout=True, capture_stderr=True)
            assert "weather" in out.stdout.decode() and "mail" in out.stdout.decode()
