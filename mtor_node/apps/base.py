"""The realm-app contract: an app is a module-level `App` with a name, the words that start it, and
an async handler that turns an utterance into text to show and speak.

Apps run on the broker node only and never leave it: they are not intents, they are never routed
to a peer. Each reads its own settings from the node's config and is off until configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

MAX_UTTERANCE = 500  # characters of text an app takes (a spoken sentence, a place name)
MAX_ANSWER = 4000  # characters an app returns (it is spoken aloud)


class AppError(Exception):
    """Something the user should hear: `code` is stable (not_configured, airgapped, offline, not_found, failed)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Answer:
    text: str  # shown in the page / printed by the CLI
    say: str  # spoken (often the same, without units a voice stumbles on)
    data: dict | None = None  # a small structured form for programs

    def to_dict(self) -> dict:
        return {"text": self.text[:MAX_ANSWER], "say": self.say[:MAX_ANSWER], "data": self.data}


Config = Mapping[str, Any]  # the node's config values: "weather.place" -> ...
Handler = Callable[[str, Config], Awaitable[Answer]]


@dataclass(frozen=True)
class App:
    name: str
    triggers: tuple[str, ...]  # single lower-case words that start it in the wake-word menu
    description: str
    handler: Handler
    configured: Callable[[Config], bool]  # off until this says yes
    private: bool = False  # reads the operator's own data (mail): only the node's own machine or the sysop
    needs_internet: bool = True  # refused in an air-gapped realm

    async def run(self, text: str, config: Config) -> Answer:
        if not isinstance(text, str):
            raise AppError("bad_request", "the text must be a string")
        if len(text) > MAX_UTTERANCE:
            raise AppError("bad_request", f"the text is limited to {MAX_UTTERANCE} characters")
        if self.needs_internet and config.get("p2p.airgap"):
            raise AppError("airgapped", f"this realm is air-gapped: the {self.name} app never calls out")
        if not self.configured(config):
            raise AppError("not_configured", f"the {self.name} app is off; configure it in mtor.toml ([{self.name}])")
        return await self.handler(text.strip(), config)
