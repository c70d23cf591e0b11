"""Benchmark the accounting extractor (prints figures; not a timed test).

1. Steady state on a simulated OpenStack (default 10,000 VMs in 20 projects, most of them
   running and unchanged since the previous run 6 hours earlier): HTTP requests and wall
   time of our extractor, and of cASO 5.2.2 against the same simulator.  cASO is installed
   from PyPI into its own virtualenv (``--venv``, reused between runs) with a generated
   caso.conf (nova extractor, ssm messenger into a dirq directory); when it cannot be
   installed or run, the reason is printed.
   Also our extractor with ``vm_listing: all_projects`` (one listing for all projects).
1b. The run that closes a month on the same cloud: the extra instance-action reads for closed-month
   statuses (only VMs alive at the month's end and changed since).
2. OpenNebula (simulator in a child process, so the figures are the client's own): 10,000
   VMs in 5 groups, a steady-state run (window of 6 hours): XML-RPC calls and wall time with
   one listing per group (``per_project``: oned pages the whole pool each time) and with one
   listing for all groups (``auto``, the default there).
3. Rendering: cloud records rendered into APEL messages per second.
4. Queue: durable adds per second into a dirq queue on the disk of the temporary directory,
   with the root fsync'ed for every message (as before) and only when the intermediate
   directory is new (``MessageQueue.add`` now); rounds alternate, medians are printed.
5. Memory: peak RSS of a whole extraction of 100,000 VMs streamed from a synthetic backend
   into a real dirq queue (in a child process, so the figure is the extraction's own), for
   one project, and for 50 projects served by one listing of all projects.

    python benchmarks/accounting_extract.py [--vms 10000] [--projects 20] [--big 100000]
                                            [--one-vms 10000] [--venv DIR] [--skip-caso]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import _paths  # noqa: F401 - tests/support (the simulators) on sys.path
import yaml

from fedcloud_site.accounting.daemon import run_extraction
from fedcloud_site.accounting.messages import CLOUD_FORMAT, Batcher, MessageSink
from fedcloud_site.accounting.records import CloudRecord
from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.log import configure_logging, get_logger
from fedcloud_site.queue import MessageQueue
from fedcloud_site.timeutil import next_month
from fedcloud_testing.caso import CASO_VERSION, caso_conf, ensure_caso
from fedcloud_testing.openstack import ADMIN_PASSWORD, ADMIN_PROJECT, ADMIN_USER, OpenStackSim, generate
from fedcloud_testing.peers import PeerUnavailable

DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fedcloud-site-bench" / \
    f"caso-{CASO_VERSION}"


def now_hour() -> datetime:
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def write_config(directory: Path, cloud: Dict[str, Any], accounting: Dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {"site": {"name": "BENCH-SITE", "service_name": "BENCH-SITE-cloud"}, "cloud": cloud,
              "accounting": dict({"state_dir": str(directory / "state"), "queue_dir": str(directory / "outgoing"),
                                  "ignore_projects": ["admin"]}, **accounting)}
    path = directory / "fedcloud-site.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def count_records(queue_dir: Path) -> Dict[str, int]:
    """Messages and cloud records in a dirq directory."""
    messages = records = 0
    for element in sorted(queue_dir.glob("*/*")):
        if element.name.endswith((".tmp", ".lck")):
            continue
        messages += 1
        text = element.read_text(encoding="ascii", errors="replace")
        if text.startswith("APEL-cloud-message"):
            records += text.count("\nVMUUID: ")
    return {"messages": messages, "cloud_records": records}


# -- 1. steady state: ours and cASO -------------------------------------------------------------------
def ours(sim: OpenStackSim, work: Path, previous: datetime, now: datetime, record_types: List[str],
         listing: str = "auto") -> Dict[str, Any]:
    cloud = {"backend": "openstack", "openstack": {"auth_url": sim.auth_url, "username": ADMIN_USER,
                                                   "password": ADMIN_PASSWORD, "project_name": ADMIN_PROJECT,
                                                   "page_size": 1000}}
    json_queues = {kind: {"queue_dir": str(work / f"outgoing-{kind}"), "destination": f"{kind}-records"}
                   for kind in ("ip", "accelerator")}
    path = write_config(work, cloud, {"record_types": record_types, "first_run_start": previous.isoformat(),
                                      "vm_listing": listing, **json_queues})
    config = load_config(path)
    log = get_logger("accounting")
    # the previous run, 6 h ago, so that this one is a steady-state run
    run_extraction(config, open_backend(config), previous, log)
    shutil.rmtree(work / "outgoing", ignore_errors=True)
    sim.reset_counts()
    started = time.perf_counter()
    backend = open_backend(config)
    summary = run_extraction(config, backend, now, log)
    wall = time.perf_counter() - started
    backend.close()
    return {"tool": "fedcloud-site", "record_types": record_types, "vm_listing": summary.get("vm_listing"),
            "http_requests": sim.total_requests, "requests_by_route": dict(sorted(sim.requests.items())),
            "wall_seconds": round(wall, 2), "vms": summary.get("vms"), **count_records(work / "outgoing")}


def install_caso(venv: Path) -> Optional[str]:
    """Path of caso-extract in ``venv`` (installed on first use); None with the reason printed."""
    print(f"# caso=={CASO_VERSION} in {venv} (installed on first use) ...", flush=True)
    try:
        return str(ensure_caso(venv, CASO_VERSION))
    except (PeerUnavailable, RuntimeError, subprocess.SubprocessError, OSError) as exc:
        print(f"caso: cannot be installed: {exc}")
        return None


def caso(sim: OpenStackSim, work: Path, exe: str, projects: List[str], previous: datetime, now: datetime
         ) -> Dict[str, Any]:
    spool, outgoing = work / "spool", work / "outgoing"
    spool.mkdir(parents=True, exist_ok=True)
    for project in projects:  # the previous run, 6 h ago (cASO's state: lastrun.<project>)
        (spool / f"lastrun.{project}").write_text(str(previous), encoding="utf-8")
    conf = caso_conf(work / "caso.conf", "BENCH-SITE", sim.auth_url, ADMIN_USER, ADMIN_PASSWORD, projects, spool,
                     outgoing, extra={("DEFAULT", "service_name"): "BENCH-SITE-cloud",
                                      ("DEFAULT", "vo_property"): "egi.VO",
                                      ("DEFAULT", "region_name"): sim.data.region})
    # no project_name: cASO scopes its clients itself (project or system)
    sim.reset_counts()
    started = time.perf_counter()
    result = subprocess.run([exe, "--config-file", str(conf), "--extract-to", now.strftime("%Y-%m-%d %H:%M:%S+00:00")],
                            capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    figures: Dict[str, Any] = {"tool": f"caso {CASO_VERSION}", "exit_status": result.returncode,
                               "http_requests": sim.total_requests,
                               "requests_by_route": dict(sorted(sim.requests.items())),
                               "wall_seconds": round(wall, 2)}
    if outgoing.is_dir():
        figures.update(count_records(outgoing))
    if result.returncode != 0:
        figures["error"] = (result.stderr or result.stdout)[-2000:]
    return figures


def bench_cloud(n_vms: int, n_projects: int, now: datetime) -> Any:
    """The benchmarked OpenStack cloud: 5% of the VMs deleted, 2% changed in the last day."""
    return generate(seed=7, n_projects=n_projects, vms_per_project=n_vms // n_projects, deleted_fraction=0.05,
                    changed_fraction=0.02, fips_per_project=2, volumes_per_project=0, now=now)


def steady_state(n_vms: int, n_projects: int, venv: Path, skip_caso: bool) -> None:
    now = now_hour()
    previous = now - timedelta(hours=6)
    data = bench_cloud(n_vms, n_projects, now)
    projects = [p.id for p in data.projects.values() if p.name.startswith("project-")]
    admin = data.find_user(ADMIN_USER)
    for project in projects:  # cASO's project-scoped sessions need a role on each project, as in production
        data.grant(admin.id, "reader", project_id=project)
    print(f"# steady state: {n_vms} VMs in {n_projects} projects, previous run {previous:%H:%M}, this run "
          f"{now:%Y-%m-%d %H:%M} UTC")
    work = Path(tempfile.mkdtemp(prefix="acc-bench-"))
    try:
        with OpenStackSim(data, max_limit=1000) as sim:
            mine = ours(sim, work / "ours", previous, now, ["cloud"])
            print(json.dumps(mine, sort_keys=True))
            full = ours(sim, work / "ours-all", previous, now, ["cloud", "ip", "accelerator"])
            print(json.dumps({k: full[k] for k in ("tool", "record_types", "http_requests", "wall_seconds",
                                                  "messages", "cloud_records")}, sort_keys=True))
            together = ours(sim, work / "ours-together", previous, now, ["cloud"], listing="all_projects")
            print(json.dumps({k: together[k] for k in ("tool", "record_types", "vm_listing", "http_requests",
                                                      "wall_seconds", "messages", "cloud_records")}, sort_keys=True))
            if skip_caso:
                print("caso: skipped (--skip-caso)")
                return
            exe = install_caso(venv)
            if exe is None:
                return
            theirs = caso(sim, work / "caso", exe, projects, previous, now)
            print(json.dumps(theirs, sort_keys=True))
            if theirs.get("exit_status") == 0 and theirs["http_requests"]:
                print(f"ratio: caso/fedcloud-site requests = {theirs['http_requests'] / mine['http_requests']:.1f}x, "
                      f"wall time = {theirs['wall_seconds'] / max(mine['wall_seconds'], 1e-6):.1f}x")
            else:
                print("caso: did not complete; see its error above")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- 1b. the run that closes a month: closed-month statuses from instance actions ----------------------------
def month_close(n_vms: int, n_projects: int) -> None:
    """The first run after a month ended (previous run 12 h earlier): besides the listings, one instance-action
    read per VM alive at the month's end whose ``updated`` is after it (for its closed month's status)."""
    now = next_month(now_hour() - timedelta(days=40)) + timedelta(hours=6)
    previous = now - timedelta(hours=12)
    month_end = now - timedelta(hours=6)
    data = bench_cloud(n_vms, n_projects, now)
    changed = sum(1 for s in data.servers.values() if s.updated > month_end and s.created < month_end
                  and s.launched_at is not None and not (s.deleted and s.terminated_at and s.terminated_at < previous))
    print(f"# month close: {n_vms} VMs in {n_projects} projects, previous run {previous:%m-%d %H:%M}, this run "
          f"{now:%Y-%m-%d %H:%M} UTC; {changed} VMs alive at the month's end changed since")
    work = Path(tempfile.mkdtemp(prefix="acc-bench-close-"))
    try:
        with OpenStackSim(data, max_limit=1000) as sim:
            figures = ours(sim, work / "ours", previous, now, ["cloud"])
            actions = figures["requests_by_route"].get("nova.server.instance_actions", 0)
            print(json.dumps({"tool": "fedcloud-site", "run": "month close", "http_requests": figures["http_requests"],
                              "instance_action_requests": actions, "vms_changed_since_month_end": changed,
                              "wall_seconds": figures["wall_seconds"], "cloud_records": figures["cloud_records"]},
                             sort_keys=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- 2. OpenNebula: one listing per group or one for all ----------------------------------------------------
def _serve_opennebula(conn: Any, n_vms: int, n_groups: int) -> None:
    """Child process: generate the pool, serve it until told to stop."""
    from fedcloud_testing.opennebula import OpenNebulaSimulator
    from fedcloud_testing.opennebula import generate as generate_one

    cloud = generate_one(n_vms=n_vms, seed=42, n_groups=n_groups)
    with OpenNebulaSimulator(cloud) as sim:
        conn.send((sim.url, cloud.now()))
        conn.recv()


def opennebula(n_vms: int, n_groups: int = 5) -> None:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve_opennebula, args=(child, n_vms, n_groups), daemon=True)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="acc-bench-one-"))
    try:
        url, now_epoch = parent.recv()
        now = datetime.fromtimestamp(now_epoch, tz=timezone.utc)
        print(f"# OpenNebula: {n_vms} VMs in {n_groups} groups, steady state (window of 6 hours)")
        figures = {}
        for listing in ("per_project", "auto"):
            cloud = {"backend": "opennebula", "opennebula": {"endpoint": url, "username": "oneadmin",
                                                             "password": "opennebula", "vo_attribute": "VO"}}
            path = write_config(work / listing, cloud, {
                "record_types": ["cloud"], "vm_listing": listing, "ignore_projects": ["oneadmin", "users"],
                "first_run_start": (now - timedelta(hours=6)).isoformat()})
            config = load_config(path)
            backend = open_backend(config)
            started = time.perf_counter()
            summary = run_extraction(config, backend, now, get_logger("accounting"))
            wall = time.perf_counter() - started
            calls = dict(backend.request_count())
            backend.close()
            figures[listing] = {"tool": "fedcloud-site", "backend": "opennebula", "vms_in_pool": n_vms,
                                "groups": n_groups, "vm_listing": summary["vm_listing"],
                                "xmlrpc_calls": calls.pop("total"), "calls_by_method": calls,
                                "wall_seconds": round(wall, 2), "projects": summary["projects"],
                                "vms": summary.get("vms"), **count_records(work / listing / "outgoing")}
            print(json.dumps(figures[listing], sort_keys=True))
        per, auto = figures["per_project"], figures["auto"]
        print(f"ratio: per-project/one listing: XML-RPC calls = {per['xmlrpc_calls'] / auto['xmlrpc_calls']:.1f}x, "
              f"wall time = {per['wall_seconds'] / max(auto['wall_seconds'], 1e-6):.1f}x")
    finally:
        parent.send("stop")
        server.join(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


# -- 3. rendering ------------------------------------------------------------------------------------------
class NullSink(MessageSink):
    def __init__(self) -> None:
        self.bytes = 0

    def put(self, kind: str, message: str, records: int) -> None:
        self.bytes += len(message)


def rendering(n: int) -> None:
    records = [CloudRecord(vm_uuid=f"{i:08x}-0000-4000-8000-{i:012x}", site_name="BENCH-SITE", fqan="vo.example.org",
                           status="started", start_time=1_790_000_000, measurement_time=1_795_000_000,
                           cloud_compute_service="BENCH-SITE-cloud", machine_name=f"vm-{i}", local_user_id="u" * 32,
                           local_group_id="p" * 32, global_user_name="a" * 40 + "@egi.eu", wall_duration=5_000_000,
                           cpu_duration=20_000_000, cpu_count=4, memory=8192, disk=100, public_ip_count=1,
                           image_id="https://appdb.egi.eu/store/vo/image/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d:77/",
                           cloud_type="fedcloud-site", benchmark_type="HEPSPEC06", benchmark=10.5) for i in range(n)]
    sink = NullSink()
    batcher = Batcher(CLOUD_FORMAT, sink, 100, 256 * 1024)
    started = time.perf_counter()
    for record in records:
        batcher.add(record)
    batcher.flush()
    wall = time.perf_counter() - started
    print(json.dumps({"rendering": {"records": n, "seconds": round(wall, 3), "records_per_second": int(n / wall),
                                    "messages": batcher.messages, "bytes_per_record": sink.bytes // n}}))


# -- 4. durable adds into the dirq queue ---------------------------------------------------------------------
class RootAlwaysSynced(MessageQueue):
    """``MessageQueue.add`` as it was: the queue root fsync'ed for every message."""

    def add(self, message: Any) -> str:
        self._root_synced_for = None  # as if the directory were new every time: file, directory and root
        return super().add(message)


def queue_throughput(n: int, size: int, rounds: int = 20) -> None:
    """``n`` adds in ``rounds`` short rounds alternating before/after (ABBA), so that the load of the
    machine weighs on both alike; the median round and the overall rate of each are printed."""
    message = "APEL-cloud-message: v0.4\n" + "x" * max(0, size - 26) + "\n"
    per_round = max(1, n // rounds)
    rates: Dict[str, List[float]] = {"before": [], "after": []}
    seconds: Dict[str, float] = {"before": 0.0, "after": 0.0}
    fsyncs: Dict[str, int] = {"before": 0, "after": 0}
    real_fsync = os.fsync
    count = [0]

    def counting_fsync(fd: int) -> None:
        count[0] += 1
        real_fsync(fd)

    work = Path(tempfile.mkdtemp(prefix="acc-bench-queue-"))
    queues = {"before": RootAlwaysSynced(work / "before"), "after": MessageQueue(work / "after")}
    try:
        for index in range(rounds):
            order = ("before", "after") if index % 2 == 0 else ("after", "before")
            for label in order:
                count[0] = 0
                os.fsync = counting_fsync  # type: ignore[assignment]
                try:
                    started = time.perf_counter()
                    for _ in range(per_round):
                        queues[label].add(message)
                    wall = time.perf_counter() - started
                finally:
                    os.fsync = real_fsync  # type: ignore[assignment]
                rates[label].append(per_round / wall)
                seconds[label] += wall
                fsyncs[label] += count[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = per_round * rounds

    def figures(label: str) -> Dict[str, Any]:
        return {"messages_per_second_median_round": int(statistics.median(rates[label])),
                "messages_per_second_overall": int(total / seconds[label]),
                "fsyncs_per_message": round(fsyncs[label] / total, 2)}

    print(json.dumps({"queue_add": {
        "messages": total, "message_bytes": len(message), "rounds": rounds, "directory": tempfile.gettempdir(),
        "before_root_fsync_every_message": figures("before"),
        "after_root_fsync_for_new_directory": figures("after")}}, sort_keys=True))


# -- 5. memory of a 100,000-VM extraction ------------------------------------------------------------------------
BIG_CHILD = r"""
import json, resource, sys, time
from datetime import datetime, timedelta, timezone
from typing import Iterator, Optional
from fedcloud_site.accounting.daemon import run_extraction
from fedcloud_site.cloud.base import VM, CloudBackend, IPAddress, Project, VMState
from fedcloud_site.config import load_config
from fedcloud_site.log import get_logger

N = int(sys.argv[2])
P = int(sys.argv[3])
NOW = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)

class Synthetic(CloudBackend):
    '''VMs generated one at a time: the extractor's memory is what this measures.  With several
    projects it reads the whole pool for any listing, as OpenNebula does (one listing for all).'''
    name = "synthetic"
    filters_vms_by_project = P == 1
    def list_projects(self):
        for p in range(P):
            yield Project(id=f"p-{p}", name=f"project-{p}", properties={"egi.VO": "vo.example.org"})
    def list_flavors(self):
        return iter(())
    def list_images(self, owner=None):
        return iter(())
    def list_vms(self, project_id=None, active_since=None) -> Iterator[VM]:
        for i in range(N):
            if project_id is not None and project_id != f"p-{i % P}":
                continue
            yield VM(id=f"{i:08x}-0000-4000-8000-{i:012x}", name=f"vm-{i}", project_id=f"p-{i % P}",
                     user_id=f"u{i % 500}",
                     state=VMState.RUNNING, status="ACTIVE", created_at=NOW - timedelta(days=40, seconds=i),
                     vcpus=2, ram_mb=4096, disk_gb=40, image_id="img", user_name=f"user{i % 500}@egi.eu",
                     addresses=(IPAddress(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 4),))

def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

config = load_config(sys.argv[1])
before = status("VmRSS")
peak_before = status("VmHWM")
started = time.perf_counter()
summary = run_extraction(config, Synthetic(), NOW, get_logger("accounting"))
wall = time.perf_counter() - started
print(json.dumps({"vms": N, "projects": P, "vm_listing": summary["vm_listing"],
                  "message_buffer_peak_bytes": summary.get("message_buffer_peak_bytes"),
                  "cloud_records": summary["cloud_records"], "messages": summary["messages"],
                  "seconds": round(wall, 2), "records_per_second": int(summary["cloud_records"] / wall),
                  "rss_before_mb": round(before, 1), "peak_rss_before_mb": round(peak_before, 1),
                  "peak_rss_mb": round(status("VmHWM"), 1)}))
"""


def memory(n: int, projects: int = 1) -> None:
    work = Path(tempfile.mkdtemp(prefix="acc-bench-big-"))
    try:
        path = write_config(work, {"backend": "static"}, {"record_types": ["cloud"],
                                                          "first_run_start": "2026-11-01"})
        result = subprocess.run([sys.executable, "-c", BIG_CHILD, str(path), str(n), str(projects)],
                                capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            print(f"memory: the extraction failed: {result.stderr[-2000:]}")
            return
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        figures["queue_bytes"] = sum(p.stat().st_size for p in (work / "outgoing").glob("*/*"))
        label = f"extraction_{n}_vms" + (f"_{projects}_projects" if projects > 1 else "")
        print(json.dumps({label: figures}, sort_keys=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--big", type=int, default=100_000, help="VMs of the rendering/memory figures")
    parser.add_argument("--one-vms", type=int, default=10_000, help="VMs of the OpenNebula figures")
    parser.add_argument("--queue-messages", type=int, default=2000, help="messages of the queue figures")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="virtualenv for cASO (reused)")
    parser.add_argument("--skip-caso", action="store_true")
    args = parser.parse_args(argv)
    configure_logging()
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    steady_state(args.vms, args.projects, args.venv, args.skip_caso)
    month_close(args.vms, args.projects)
    opennebula(args.one_vms)
    rendering(args.big)
    queue_throughput(args.queue_messages, 70_000)  # a full cloud message: 100 records of ~700 bytes
    queue_throughput(args.queue_messages, 2_000)
    memory(args.big // 10)  # the same extraction at a tenth of the size: peak memory must not grow with VMs
    memory(args.big)
    memory(args.big, projects=50)  # one listing dispatched to 50 projects' messages: bounded buffers
    return 0


if __name__ == "__main__":
    sys.exit(main())
