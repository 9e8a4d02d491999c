"""Where model files come from: a file shipped in a Python package, a local path, or a hub id."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Callable

from .base import BackendError


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")


def resolve(source: str, progress: Callable[[str, float | None], None] | None = None) -> Path:
    """Return a local path for `source`.

    Forms: ``parts:NAME`` (a file shipped in pieces across PyPI packages, see `PARTS`),
    ``package:MODULE/relative/file`` (a file inside an installed package),
    ``path:/dir`` or an existing path, otherwise a hub id (``org/name``) fetched into the
    hub cache, with progress. Offline, a hub id that is not cached fails in seconds with a
    message saying so.
    """
    if source.startswith("parts:"):
        from .parts import assemble

        return assemble(source[len("parts:"):], progress)
    if source.startswith("package:"):
        module, _, rel = source[len("package:"):].partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise BackendError("unavailable", f"package {module!r} is not installed (pip install {module.replace('_', '-')})")
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        if not path.exists():
            raise BackendError("unavailable", f"{rel} is not inside package {module!r}")
        return path
    if source.startswith("path:"):
        source = source[len("path:"):]
    if os.path.isabs(source) or source.startswith(".") or Path(source).exists():
        path = Path(source).expanduser()
        if not path.exists():
            raise BackendError("unavailable", f"model path {path} does not exist")
        return path
    return _hub_snapshot(source, progress)


def _hub_snapshot(repo_id: str, progress) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        # Cached copy first: works offline and costs no request.
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        pass
    if hub_offline():
        raise BackendError("unavailable", offline_message(repo_id))
    if progress:
        progress(f"downloading {repo_id} from the hub", None)
    try:
        return Path(snapshot_download(repo_id))  # huggingface_hub prints per-file progress bars
    except Exception as e:  # network errors come in many types; the message is what matters
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise BackendError("unavailable", f"model {repo_id!r} could not be downloaded from the Hugging Face hub ({why}); "
                           f"fix: `hf download {repo_id}` where the hub is reachable (then copy the hub cache here), "
                           f"or set the model's source to a local folder") from e


def offline_message(repo_id: str) -> str:
    """Which model, why, and the command that fixes it."""
    return (f"model {repo_id!r} is not in the local model cache and the node is offline (airgap or hub.offline); "
            f"fix: run `hf download {repo_id}` on a connected machine and copy its hub cache (~/.cache/huggingface/hub) "
            f"here, or set the model's source to a local folder")
