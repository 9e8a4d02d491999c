"""The worker's model registry at run time: add, remove, load and unload models without a restart.

mtor.toml stays the operator's file (its comments are kept: nothing rewrites it); what the sysop
changes at run time is kept in the node's mtor.db (`runtime_models`: an added model's fields, or a
removal of a model from mtor.toml) and applied over the config at every start.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from pathlib import Path

import trio

from .backends import BackendError
from .config import ConfigError, load_models
from .models import ModelManager, ModelState
from .store import migrate

log = logging.getLogger("mtor.models")

MIGRATIONS = ["CREATE TABLE runtime_models (name TEXT PRIMARY KEY, fields TEXT, created REAL NOT NULL)"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
MAX_MODELS = 256


class RegistryError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class ModelRegistry:
    def __init__(self, conn: sqlite3.Connection, manager: ModelManager):
        self.conn, self.manager = conn, manager
        migrate(conn, "runtime_models", MIGRATIONS)

    def apply_saved(self) -> None:
        """At start: the sysop's additions and removals over what mtor.toml says."""
        for name, fields in self.conn.execute("SELECT name, fields FROM runtime_models ORDER BY created").fetchall():
            try:
                if fields is None:
                    self._drop(name)
                else:
                    self._put(name, json.loads(fields))
            except (RegistryError, ValueError) as e:
                log.warning("saved model %s not applied: %s", name, getattr(e, "message", e))

    def _spec(self, name: str, fields: dict):
        if not isinstance(name, str) or not NAME.match(name):
            raise RegistryError("bad_request", "a model name is 1-100 letters, digits or _.:- (starting with a letter or digit)")
        if not isinstance(fields, dict):
            raise RegistryError("bad_request", "the model must be a JSON object of mtor.toml's [models.NAME] fields")
        warnings: list[str] = []
        try:
            (spec,), flags = load_models({name: fields}, Path("runtime"), warnings)  # the same checks as mtor.toml
        except ConfigError as e:
            raise RegistryError("bad_request", str(e).replace(" in runtime", "")) from None
        if warnings:
            raise RegistryError("bad_request", "; ".join(w.replace(" in runtime (ignored)", ": not a model field") for w in warnings))
        from .backends import BACKENDS  # the name only: importing a backend may import torch (seconds)

        if spec.backend not in BACKENDS:
            raise RegistryError("bad_request", f"unknown backend {spec.backend!r}; known: {', '.join(sorted(BACKENDS))}")
        return spec, flags[name]

    def _put(self, name: str, fields: dict) -> dict:
        spec, flags = self._spec(name, fields)
        m = self.manager
        if name in m.states:
            raise RegistryError("exists", f"a model {name!r} exists already; remove it first", 409)
        if len(m.states) >= MAX_MODELS:
            raise RegistryError("too_many", f"at most {MAX_MODELS} models", 409)
        m.states[name] = ModelState(spec)
        if flags["default"] or not m.defaults.get(spec.kind):
            m.defaults[spec.kind] = name
        return m.states[name].snapshot()

    def _drop(self, name: str) -> ModelState:
        m = self.manager
        state = m.states.get(name)
        if state is None:
            raise RegistryError("not_found", f"no model {name!r}", 404)
        if state.inflight:
            raise RegistryError("busy", f"model {name!r} is running {state.inflight} intent(s); try again when it is idle", 409)
        del m.states[name]
        if m.defaults.get(state.spec.kind) == name:
            m.defaults[state.spec.kind] = next((n for n, s in m.states.items() if s.spec.kind == state.spec.kind), None)
        return state

    def add(self, name: str, fields: dict) -> dict:
        snap = self._put(name, fields)
        self.conn.execute("INSERT OR REPLACE INTO runtime_models VALUES (?, ?, ?)", (name, json.dumps(fields), time.time()))
        log.info("model %s added by the sysop (%s, %s)", name, snap["kind"], snap["backend"])
        return snap

    async def remove(self, name: str) -> dict:
        state = self._drop(name)
        self.conn.execute("INSERT OR REPLACE INTO runtime_models VALUES (?, NULL, ?)", (name, time.time()))
        await self._release(state)
        log.info("model %s removed by the sysop", name)
        return {"removed": name, "source": state.spec.source}

    def _get(self, name: str) -> ModelState:
        state = self.manager.states.get(name)
        if state is None:
            raise RegistryError("not_found", f"no model {name!r}", 404)
        return state

    async def load(self, name: str) -> dict:
        state = self._get(name)
        if state.status in ("failed", "unavailable"):
            state.failed_at = 0.0  # the sysop asks now: do not wait for the retry period
        try:
            await self.manager.ensure_loaded(name)
        except BackendError as e:
            raise RegistryError("unavailable", e.message, 409) from None
        return state.snapshot()

    async def unload(self, name: str) -> dict:
        state = self._get(name)
        if state.inflight:
            raise RegistryError("busy", f"model {name!r} is running {state.inflight} intent(s)", 409)
        await self._release(state)
        return state.snapshot()

    @staticmethod
    async def _release(state: ModelState) -> None:
        async with state.lock:
            backend, state.backend = state.backend, None
            if state.status == "ready":
                state.status = "unloaded"
            if backend is not None:
                await trio.to_thread.run_sync(backend.unload_sync)
