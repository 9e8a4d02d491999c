"""A stand-in for Open-Meteo's geocoding and forecast APIs on 127.0.0.1 (the public internet cannot
be reached from tests). It answers with the JSON shapes Open-Meteo documents
(https://open-meteo.com/en/docs, https://open-meteo.com/en/docs/geocoding-api): a `results` list
(absent when nothing matches), `current`/`daily` blocks with their `*_units`, and
`{"error": true, "reason": ...}` with HTTP 400 for bad parameters. It records every request."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PLACES = {
    "berlin": {"id": 2950159, "name": "Berlin", "latitude": 52.52437, "longitude": 13.41053, "elevation": 74.0,
               "feature_code": "PPLC", "country_code": "DE", "admin1": "Land Berlin", "timezone": "Europe/Berlin",
               "population": 3426354, "country_id": 2921044, "country": "Germany"},
    "new york": {"id": 5128581, "name": "New York", "latitude": 40.71427, "longitude": -74.00597, "elevation": 10.0,
                 "feature_code": "PPL", "country_code": "US", "admin1": "New York", "timezone": "America/New_York",
                 "population": 8175133, "country_id": 6252001, "country": "United States"},
}


def forecast_body(q: dict) -> dict:
    f = q.get("temperature_unit") == "fahrenheit"
    t = (lambda c: round(c * 9 / 5 + 32, 1)) if f else (lambda c: c)
    return {
        "latitude": float(q["latitude"]), "longitude": float(q["longitude"]), "generationtime_ms": 0.05,
        "utc_offset_seconds": 3600, "timezone": q.get("timezone", "GMT"), "timezone_abbreviation": "CET", "elevation": 38.0,
        "current_units": {"time": "iso8601", "interval": "seconds", "temperature_2m": "°F" if f else "°C",
                          "weather_code": "wmo code", "wind_speed_10m": "mp/h" if f else "km/h"},
        "current": {"time": "2026-12-02T18:00", "interval": 900, "temperature_2m": t(3.4), "weather_code": 61, "wind_speed_10m": 14.8},
        "daily_units": {"time": "iso8601", "weather_code": "wmo code", "temperature_2m_max": "°C", "temperature_2m_min": "°C",
                        "precipitation_probability_max": "%"},
        "daily": {"time": ["2026-12-02"], "weather_code": [61], "temperature_2m_max": [t(5.1)], "temperature_2m_min": [t(-0.6)],
                  "precipitation_probability_max": [80]},
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def _send(self, status: int, body: dict | bytes) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.requests.append((url.path, q))
        mode = self.server.mode
        if mode == "garbage":
            return self._send(200, b"<html>not json</html>")
        if mode == "huge":
            return self._send(200, b'{"results": "' + b"x" * (3 << 20) + b'"}')
        if url.path == "/v1/search":
            hit = PLACES.get(q.get("name", "").lower())
            return self._send(200, {"results": [hit], "generationtime_ms": 0.7} if hit else {"generationtime_ms": 0.4})
        if url.path == "/v1/forecast":
            try:
                lat, lon = float(q["latitude"]), float(q["longitude"])
                assert -90 <= lat <= 90 and -180 <= lon <= 180
            except (KeyError, ValueError, AssertionError):
                return self._send(400, {"error": True, "reason": "Latitude must be in range of -90 to 90°."})
            return self._send(200, forecast_body(q))
        self._send(404, {"error": True, "reason": "Not Found"})


@contextmanager
def open_meteo(mode: str = "ok"):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.requests, srv.mode = [], mode
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        yield srv, {"geocoding_url": f"{base}/v1/search", "forecast_url": f"{base}/v1/forecast"}
    finally:
        srv.shutdown()
        srv.server_close()
