"""List every VM of a simulated OpenNebula pool through the ``opennebula`` backend (pyone, XML-RPC).

Three listings of one seeded pool of N VMs (30% of them DONE, 30% with several history records):

* ``all``: ``list_vms(active_since=1970)`` -- every VM, DONE ones included (the headline figure);
* ``active``: ``list_vms()`` -- VMs not DONE (no history calls; earlier records left unknown);
* ``month``: ``list_vms(active_since=now - 30 days)`` -- with complete run periods (history
  before the window from a second accounting call);
* ``per_project``: the same for each of the pool's 5 groups in turn, as the accounting
  extractor asks (OpenNebula cannot filter the pool by group: each listing pages it all;
  users, hosts, clusters and templates are read once for all of them).

The simulator runs in a child process so that the figures are the client's own: VMs listed,
XML-RPC calls per method (as the backend and as the simulator counted them), wall time and
CPU time.  Calls must grow with pages, not with VMs: ``one.vmpool.infoextended`` calls =
ceil(VMs / (page size - 1)) (pages overlap by one VM), plus one call each for users, hosts,
clusters and templates, and one or two ``one.vmpool.accounting`` calls.

    python benchmarks/list_vms_opennebula.py [N_VMS] [PAGE_SIZE]
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, Optional, Sequence

import _paths  # noqa: F401 - the checkout and tests/support (the simulators) on sys.path
from _common import list_vms_main

from fedcloud_site.cloud.opennebula import OpenNebulaBackend, OpenNebulaSettings
from fedcloud_site.schema import Secret


def _serve(conn: Any, n_vms: int) -> None:
    """Child process: generate the pool, serve it, answer ``counts`` requests until ``stop``."""
    from fedcloud_testing.opennebula import OpenNebulaSimulator, generate

    started = time.perf_counter()
    cloud = generate(n_vms=n_vms, seed=42)
    with OpenNebulaSimulator(cloud) as sim:
        conn.send((sim.url, cloud.now(), time.perf_counter() - started))
        while True:
            message = conn.recv()
            if message == "counts":
                conn.send(dict(sim.calls))
                sim.reset_counts()
            else:
                break


def _listing(conn: Any, url: str, page_size: int, active_since: Optional[datetime],
             projects: Sequence[Optional[str]] = (None,)) -> Dict[str, Any]:
    settings = OpenNebulaSettings(endpoint=url, username="oneadmin", password=Secret("opennebula"),
                                  page_size=page_size)
    backend = OpenNebulaBackend(settings)
    conn.send("counts")
    conn.recv()  # reset the simulator's counters
    wall, cpu = time.perf_counter(), time.process_time()
    listed = sum(1 for project in projects for _ in backend.list_vms(project, active_since=active_since))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    counts = dict(backend.request_count())
    backend.close()
    conn.send("counts")
    return {"listed": listed, "requests": counts.pop("total"), "requests_by_method": counts,
            "simulator_calls": conn.recv(), "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)}


def run(n_vms: int = 10_000, page_size: int = 1000) -> Dict[str, Any]:
    """List the VMs of an ``n_vms`` pool three ways; returns the measured figures."""
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child, n_vms), daemon=True)
    server.start()
    try:
        url, now, generated = parent.recv()
        month = datetime.fromtimestamp(now - 30 * 86400, tz=timezone.utc)
        everything = _listing(parent, url, page_size, datetime.fromtimestamp(0, tz=timezone.utc))
        active = _listing(parent, url, page_size, None)
        accounting = _listing(parent, url, page_size, month)
        per_project = _listing(parent, url, page_size, month, [str(gid) for gid in range(100, 105)])
    finally:
        parent.send("stop")
        server.join(timeout=30)
    return {"backend": "opennebula", "vms": n_vms, "page_size": page_size, "listed": everything["listed"],
            "requests": everything["requests"], "wall_seconds": everything["wall_seconds"],
            "cpu_seconds": everything["cpu_seconds"],
            "vmpool_calls": everything["requests_by_method"].get("one.vmpool.infoextended", 0),
            "all": everything, "active": active, "month": accounting, "per_project": per_project,
            "generate_seconds": round(generated, 3)}


if __name__ == "__main__":
    sys.exit(list_vms_main(run))
