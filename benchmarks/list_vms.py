"""Benchmark: list every VM of a 10,000-VM simulated OpenStack project and OpenNebula pool.

Prints the API requests made and the wall time for each backend; requests must grow with
pages, not with VMs.  Usage: python benchmarks/list_vms.py [N_VMS]
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    n_vms = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    for name in ("list_vms_openstack", "list_vms_opennebula"):
        module = importlib.import_module(name)
        figures = module.run(n_vms)
        print(f"{name}: {json.dumps(figures, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
