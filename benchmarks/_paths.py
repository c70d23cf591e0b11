"""Puts the repository and the test-support package (``tests/support``: simulators, launchers, peer tools)
on ``sys.path``, so a benchmark runs as ``python3 benchmarks/<name>.py`` from a checkout."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUPPORT = REPO / "tests" / "support"

for _entry in (str(SUPPORT), str(REPO)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)
