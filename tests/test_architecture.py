"""The structure check (docs/architecture.md): layers, no cycles, no private names across modules.

Walks the import graph of the four packages with `ast` (no imports executed) and fails on
- an import from a lower layer into a higher one,
- a cycle between modules,
- a module importing a name that starts with `_` from another module (or a module named so).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("federation", "ledger", "mtor_node", "ui")

# Lowest first. A module may import only from its own layer or a lower one. The composition root
# (the daemon, the CLI and its commands) sits above the UI, which sits above the node's core.
LAYERS = (
    ("federation", "ledger"),
    ("mtor_node",),
    ("ui",),
    ("mtor_node.node", "mtor_node.cli", "mtor_node.commands", "mtor_node.client", "mtor_node.__main__"),
)


def layer_of(module: str) -> int:
    best, depth = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > depth:
                best, depth = i, len(p)
    return best


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Module → modules it imports (within the packages), and the private names imported."""
    edges: dict[str, set[str]] = defaultdict(set)
    private: list[str] = []

    def known(target: str) -> str | None:
        while target not in mods and "." in target:
            target = target.rsplit(".", 1)[0]
        return target if target in mods else None

    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            pairs: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                pairs = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                pairs = [(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base, a.name) for a in node.names]
            for target, name in pairs:
                if target.split(".")[0] not in PACKAGES:
                    continue
                resolved = known(target)
                if resolved and resolved != mod:
                    edges[mod].add(resolved)
                    if name and name.startswith("_") and not name.startswith("__"):
                        private.append(f"{mod} imports {name} from {resolved}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in list(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


MODS = modules()
EDGES, PRIVATE = imports(MODS)


def test_every_module_has_a_layer():
    assert [m for m in MODS if layer_of(m) < 0] == []


def test_no_import_from_a_lower_layer_into_a_higher_one():
    upward = [f"{a} ({layer_of(a)}) imports {b} ({layer_of(b)})"
              for a, bs in sorted(EDGES.items()) for b in sorted(bs) if layer_of(b) > layer_of(a)]
    assert upward == []


def test_federation_and_ledger_know_nothing_of_each_other():
    crossing = [f"{a} imports {b}" for a, bs in sorted(EDGES.items()) for b in sorted(bs)
                if {a.split(".")[0], b.split(".")[0]} == {"federation", "ledger"}]
    assert crossing == []


def test_no_cycles_between_modules():
    assert cycles(EDGES) == []


def test_no_private_names_across_modules():
    assert PRIVATE == []


def test_the_ui_reaches_the_node_only_through_its_facade():
    """ui/ imports neither federation nor ledger and runs no SQL (mtor_node/service.py; docs/architecture.md)."""
    reaching = [f"{a} imports {b}" for a, bs in sorted(EDGES.items()) if a.split(".")[0] == "ui"
                for b in sorted(bs) if b.split(".")[0] in ("federation", "ledger")]
    sql = [f"{m} calls .{n.func.attr}()" for m, path in sorted(MODS.items()) if m.split(".")[0] == "ui"
           for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
           and isinstance(n.func, ast.Attribute) and n.func.attr in ("execute", "executemany", "executescript")]
    assert reaching == [] and sql == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The check itself can fail: a made-up graph with a cycle and an upward edge."""
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert layer_of("federation.x") < layer_of("mtor_node.broker") < layer_of("ui.y") < layer_of("mtor_node.cli")
