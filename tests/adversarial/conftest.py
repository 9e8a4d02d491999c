import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for p in (ROOT, os.path.join(ROOT, "tests", "federation")):
    if p not in sys.path:
        sys.path.insert(0, p)

from fed_helpers import network  # noqa: E402,F401  (fixture)
