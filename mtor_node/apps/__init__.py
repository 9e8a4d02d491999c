"""Realm apps: small voice/text apps that run on the broker node (see base.py for the contract).

Built in: weather (Open-Meteo) and mail (IMAP over TLS). `APPS` is the registry the wake-word
menu, the HTTP route (/api/v1/apps) and `mtor-node app` all read.
"""

from __future__ import annotations

from .base import MAX_UTTERANCE, Answer, App, AppError
from .mail import APP as MAIL
from .weather import APP as WEATHER

APPS: dict[str, App] = {a.name: a for a in (WEATHER, MAIL)}


def trigger_words() -> dict[str, str]:
    """word -> app name, for the wake-word menu."""
    return {w: a.name for a in APPS.values() for w in a.triggers}


def find(name: str) -> App:
    app = APPS.get(name) if isinstance(name, str) else None
    if app is None:
        raise AppError("not_found", f"no app {str(name)[:40]!r}; known: {', '.join(APPS)}")
    return app


def describe(config) -> list[dict]:
    return [{"name": a.name, "triggers": list(a.triggers), "description": a.description,
             "configured": a.configured(config), "private": a.private,
             "available": a.configured(config) and not (a.needs_internet and config.get("p2p.airgap"))}
            for a in APPS.values()]


__all__ = ["APPS", "Answer", "App", "AppError", "MAX_UTTERANCE", "describe", "find", "trigger_words"]
