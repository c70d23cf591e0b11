"""What the benchmark scripts share."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Dict, List, Optional


def list_vms_main(run: Callable[[int, int], Dict[str, Any]], argv: Optional[List[str]] = None) -> int:
    """``script [N_VMS] [PAGE_SIZE]``: run a VM listing benchmark and print its figures as JSON.

    Exit status 1 unless every VM was listed.
    """
    args = sys.argv[1:] if argv is None else argv
    n_vms = int(args[0]) if len(args) > 0 else 10_000
    page_size = int(args[1]) if len(args) > 1 else 1000
    result = run(n_vms, page_size)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["listed"] == n_vms else 1
