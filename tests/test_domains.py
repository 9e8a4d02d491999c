"""Signature domain tags are never a prefix of one another (docs/protocol.md §5).

One node key signs ledger entries, receipts, grants and capability announcements; a signature
over `tag + message` must never be readable as one over another tag. Every module-level bytes
constant whose name contains DOMAIN, in every package, is collected with `ast` (a new tag is
checked without being listed here).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("federation", "ledger", "mtor_node", "ui")


def domain_tags() -> dict[str, bytes]:
    tags = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.parse(path.read_text(), str(path)).body:
                if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                        and isinstance(node.value.value, bytes)):
                    for target in node.targets:
                        if isinstance(target, ast.Name) and "DOMAIN" in target.id:
                            tags[f"{path.relative_to(ROOT)}:{target.id}"] = node.value.value
    return tags


def test_no_domain_tag_is_a_prefix_of_another():
    tags = domain_tags()
    assert len(tags) >= 4  # entry, receipt, grant, caps
    clashes = [(a, b) for a, ta in tags.items() for b, tb in tags.items() if a != b and tb.startswith(ta)]
    assert clashes == []


def test_the_ledger_receipt_is_the_only_receipt_tag():
    receipts = [name for name, tag in domain_tags().items() if b"receipt" in tag]
    assert receipts == ["ledger/keys.py:DOMAIN_RECEIPT"]
