"""List every VM of one simulated OpenStack project through the ``openstack`` backend.

Prints the VMs listed, the HTTP requests made (per endpoint, as the backend and as
the simulator counted them) and the wall time.  Requests must grow with pages, not
with VMs: ``servers/detail`` calls = ceil(VMs / page size) + 1 (the empty page that
ends the listing).

    python benchmarks/list_vms_openstack.py [N_VMS] [PAGE_SIZE]
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict

import _paths  # noqa: F401 - tests/support (the simulators) on sys.path
from _common import list_vms_main

from fedcloud_site.cloud.openstack import OpenStackBackend, OpenStackSettings
from fedcloud_site.schema import Duration, Secret
from fedcloud_testing.openstack import ADMIN_PASSWORD, ADMIN_PROJECT, ADMIN_USER, OpenStackSim, generate


def run(n_vms: int = 10_000, page_size: int = 1000) -> Dict[str, Any]:
    """List ``n_vms`` VMs of one project; returns the measured figures."""
    started = time.perf_counter()
    data = generate(seed=42, n_projects=1, vms_per_project=n_vms, deleted_fraction=0.0, n_images=3,
                    fips_per_project=0, volumes_per_project=0)
    project_id = next(p.id for p in data.projects.values() if p.name == "project-0")
    generated = time.perf_counter() - started
    with OpenStackSim(data, max_limit=max(page_size, 1000)) as sim:
        settings = OpenStackSettings(auth_url=sim.auth_url, username=ADMIN_USER, password=Secret(ADMIN_PASSWORD),
                                     project_name=ADMIN_PROJECT, page_size=page_size, retry_delay=Duration(0.1))
        backend = OpenStackBackend(settings)
        sim.reset_counts()
        started = time.perf_counter()
        listed = sum(1 for _ in backend.list_vms(project_id))
        wall = time.perf_counter() - started
        counts = backend.request_count()
        backend.close()
        server_counts = sim.requests
    return {"backend": "openstack", "vms": n_vms, "listed": listed, "page_size": page_size,
            "requests": counts["requests"], "requests_by_endpoint": counts["by_endpoint"],
            "simulator_requests": server_counts, "servers_detail_calls": server_counts.get("nova.servers.detail", 0),
            "wall_seconds": round(wall, 3), "generate_seconds": round(generated, 3)}


if __name__ == "__main__":
    sys.exit(list_vms_main(run))
