"""What both halves of the UI's facade share (mtor_node/service.py, mtor_node/wallet_service.py):
the node as they see it and the one error they raise (docs/architecture.md, "The service facade")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ledger import Ledger

    from .broker import Broker
    from .config import Config
    from .models import ModelManager
    from .store import Store


class ServiceError(Exception):
    """A refusal for the caller: `code` for machines, `message` for people, `status` for HTTP."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class NodeParts(Protocol):
    """The node as the facade sees it (mtor_node/node.py builds it; the facade never imports it)."""

    config: Config
    roles: list[str]
    sysop_token: str
    started_at: float
    store: Store | None
    models: ModelManager | None
    broker: Broker | None
    ledger: Ledger | None
    network: Any  # mtor_node.network.Network, while the p2p layer runs
    federation: Any  # its federation.Federation
    peer_blocks: Any  # mtor_node.blocks.PeerBlocks, with the p2p layer

    @property
    def peer_id(self) -> str: ...

    def status(self) -> dict: ...

    async def stop(self) -> None: ...
