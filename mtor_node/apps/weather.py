"""The weather app: today's forecast for a place, from Open-Meteo (no API key).

Two calls: the geocoding API turns the place into coordinates, the forecast API gives the current
temperature, the WMO weather code, the wind, and today's high, low and chance of rain. The place
comes from the utterance ("weather in Berlin") or else from `weather.place`. Both base URLs are
in the config so that a private mirror (or a test's stand-in) can answer instead.
"""

from __future__ import annotations

import re

import httpx

from .base import Answer, App, AppError, Config

TIMEOUT_S = 10.0
MAX_BODY = 1 << 20  # Open-Meteo answers are a few KiB; anything bigger is not theirs

# WMO weather interpretation codes, as Open-Meteo documents them
WMO = {
    0: "clear sky", 1: "mainly clear", 2: "partly cloudy", 3: "overcast", 45: "fog", 48: "rime fog",
    51: "light drizzle", 53: "drizzle", 55: "dense drizzle", 56: "freezing drizzle", 57: "dense freezing drizzle",
    61: "light rain", 63: "rain", 65: "heavy rain", 66: "freezing rain", 67: "heavy freezing rain",
    71: "light snow", 73: "snow", 75: "heavy snow", 77: "snow grains", 80: "light showers", 81: "showers",
    82: "violent showers", 85: "snow showers", 86: "heavy snow showers", 95: "a thunderstorm",
    96: "a thunderstorm with hail", 99: "a thunderstorm with heavy hail",
}
FILLER = {"weather", "forecast", "the", "what", "what's", "whats", "is", "like", "how", "today", "please",
          "tell", "me", "in", "for", "at", "of", "now", "temperature"}


def place_of(text: str, default: str) -> str:
    """"what's the weather in New York?" -> "New York"; nothing left -> the configured place."""
    m = re.search(r"\b(?:in|for|at)\s+(.+)$", text, re.I)
    words = (m.group(1) if m else text).strip(" .,!?").split()
    words = [w.strip(".,!?") for w in words]
    words = [w for w in words if w and (m or w.lower() not in FILLER)]
    while words and words[-1].lower() in ("today", "now", "please", "tomorrow"):
        words.pop()
    return " ".join(words)[:100] or default.strip()


async def _get_json(client: httpx.AsyncClient, url: str, params: dict, what: str) -> dict:
    try:
        async with client.stream("GET", url, params=params) as r:
            body = b""
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise AppError("failed", f"the {what} service sent more than {MAX_BODY} bytes")
    except httpx.TimeoutException:
        raise AppError("offline", f"the {what} service did not answer within {TIMEOUT_S:.0f} s") from None
    except httpx.HTTPError as e:
        raise AppError("offline", f"cannot reach the {what} service ({type(e).__name__}: {e})") from None
    try:
        data = httpx.Response(200, content=body).json()
    except ValueError:
        raise AppError("failed", f"the {what} service answered HTTP {r.status_code} with something that is not JSON") from None
    if not isinstance(data, dict):
        raise AppError("failed", f"the {what} service answered with a JSON {type(data).__name__}, not an object")
    if r.status_code >= 400 or data.get("error"):
        raise AppError("failed", f"the {what} service refused: {str(data.get('reason') or r.status_code)[:200]}")
    return data


def _num(d: dict, key: str, index: int | None = None) -> float | None:
    v = d.get(key) if isinstance(d, dict) else None
    if index is not None:
        v = v[index] if isinstance(v, list) and len(v) > index else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


async def forecast(text: str, config: Config) -> Answer:
    place = place_of(text, config.get("weather.place", ""))
    if not place:
        raise AppError("bad_request", "say a place (\"weather in Berlin\") or set weather.place in mtor.toml")
    fahrenheit = config.get("weather.units") == "fahrenheit"
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as client:
        geo = await _get_json(client, config["weather.geocoding_url"],
                              {"name": place, "count": 1, "language": "en", "format": "json"}, "geocoding")
        results = geo.get("results")
        if not isinstance(results, list) or not results or not isinstance(results[0], dict):
            raise AppError("not_found", f"no place called {place!r} is known to the geocoding service")
        hit = results[0]
        lat, lon = _num(hit, "latitude"), _num(hit, "longitude")
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise AppError("failed", "the geocoding service sent a place without valid coordinates")
        name = str(hit.get("name") or place)[:100]
        country = str(hit.get("country") or "")[:60]
        fc = await _get_json(client, config["weather.forecast_url"], {
            "latitude": lat, "longitude": lon, "timezone": "auto", "forecast_days": 1,
            "current": "temperature_2m,weather_code,wind_speed_10m",
            "daily": "weather_code,temperature_2m_max,temperature_2m_min,precipitation_probability_max",
            **({"temperature_unit": "fahrenheit", "wind_speed_unit": "mph"} if fahrenheit else {}),
        }, "forecast")
    cur, daily = fc.get("current") or {}, fc.get("daily") or {}
    temp, code, wind = _num(cur, "temperature_2m"), _num(cur, "weather_code"), _num(cur, "wind_speed_10m")
    hi, lo = _num(daily, "temperature_2m_max", 0), _num(daily, "temperature_2m_min", 0)
    rain = _num(daily, "precipitation_probability_max", 0)
    if temp is None and hi is None:
        raise AppError("failed", "the forecast service sent no temperatures")
    deg, speed = ("°F", "mph") if fahrenheit else ("°C", "km/h")
    spoken_deg = "degrees Fahrenheit" if fahrenheit else "degrees"
    sky = WMO.get(int(code), "unknown weather") if code is not None else None
    where = f"{name}, {country}" if country else name
    shown, said = [f"{where}:"], [f"In {name}"]
    if temp is not None:
        shown.append(f"{temp:.0f}{deg}" + (f", {sky}" if sky else ""))
        said.append(f"it is {temp:.0f} {spoken_deg}" + (f" with {sky}" if sky else ""))
    if hi is not None and lo is not None:
        shown.append(f"today {lo:.0f} to {hi:.0f}{deg}")
        said.append(f"today between {lo:.0f} and {hi:.0f}")
    if rain is not None:
        shown.append(f"{rain:.0f}% chance of rain")
        said.append(f"{rain:.0f} percent chance of rain")
    if wind is not None:
        shown.append(f"wind {wind:.0f} {speed}")
    data = {"place": name, "country": country, "latitude": lat, "longitude": lon, "temperature": temp,
            "weather_code": code, "sky": sky, "high": hi, "low": lo, "rain_probability": rain, "wind": wind,
            "units": "fahrenheit" if fahrenheit else "celsius"}
    return Answer(text=" ".join(shown[:1]) + " " + "; ".join(shown[1:]) + ".", say=", ".join(said) + ".", data=data)


APP = App(
    name="weather",
    triggers=("weather", "forecast"),
    description="today's forecast for a place (Open-Meteo): \"weather in Berlin\"",
    handler=forecast,
    configured=lambda c: bool(c.get("weather.enabled")),
)
