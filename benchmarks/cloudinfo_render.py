"""Benchmark: the cloud information provider on a large site, next to cloud-info-provider 1.2.

One simulated OpenStack cloud (fedcloud_testing.openstack, in this process) holds 50 VO projects,
100 flavours and 10,000 images (public, shared with other projects, private; all with EGI registry
metadata), VMs and quotas.  In the same run:

* ours: a child process reads the cloud through our OpenStack backend, builds the model and streams the
  GLUE 2.0 LDIF and the GLUE 2.1 JSON to files.  Wall time, the model's RSS and the peak RSS are printed;
  the render runs again at 2,500 and 5,000 images to show that the peak RSS above the model does not grow
  with the number of images (the documents are streamed, never held in memory).
* cloud-info-provider 1.2.0 (its own virtualenv, installed from PyPI; FEDCLOUD_SITE_CIP_VENV keeps one)
  reads the same cloud as a member of the 50 projects and prints its glue21json.

Goal: ours at least 5x faster than cloud-info-provider; peak RSS not growing with images beyond the model.

Usage: python benchmarks/cloudinfo_render.py [--images N] [--shares N] [--flavors N] [--no-cip] [--no-scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

from _paths import REPO  # the checkout, and tests/support (the simulators), on sys.path

from fedcloud_testing.cip import (
    CipUnavailable,
    add_member_user,
    ensure_venv,
    run_cip,
    site_file,
)
from fedcloud_testing.openstack import CloudData, OpenStackSim, add_admin
from fedcloud_testing.openstack.model import SimImageMember

CHILD = r"""
import json, resource, sys, time
from fedcloud_site.cloud import open_backend
from fedcloud_site.cloudinfo.glue21json import write_json
from fedcloud_site.cloudinfo.ldif import write_ldif
from fedcloud_site.cloudinfo.model import build_model
from fedcloud_site.config import load_config
from fedcloud_site.log import configure_logging
from fedcloud_site.config import LoggingSettings
from fedcloud_site.timeutil import utcnow

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

configure_logging(LoggingSettings(level="error"))
config = load_config(sys.argv[1])
start = time.perf_counter()
backend = open_backend(config)
model = build_model(config, backend, utcnow())
fetched = time.perf_counter()
model_rss = rss_mb()
peak_before_render = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
settings = config.section("cloudinfo")
with open(sys.argv[2], "wb") as out:
    ldif = write_ldif(model, out)
with open(sys.argv[3], "wb") as out:
    json_bytes = write_json(model, out)
done = time.perf_counter()
print(json.dumps({"fetch_s": fetched - start, "render_s": done - fetched, "total_s": done - start,
                  "model_rss_mb": model_rss, "peak_before_render_mb": peak_before_render,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ldif_entries": ldif.entries, "ldif_mb": ldif.bytes / 1e6, "json_mb": json_bytes / 1e6,
                  "images": len(model.images), "shares": len(model.shares), "flavors": len(model.instance_types),
                  "requests": sum(v for v in backend.request_count().values() if isinstance(v, int))}))
"""

SPECS = [{}, {"accounting:benchmark_type": "HEPSPEC06", "accounting:benchmark_value": "10.5"},
         {"Accelerator:Type": "GPU", "Accelerator:Vendor": "NVIDIA", "Accelerator:Model": "A100",
          "Accelerator:Number": "1"}]


def make_cloud(n_images: int, n_shares: int, n_flavors: int, seed: int = 7) -> CloudData:
    """A site of ``n_shares`` VO projects, ``n_flavors`` flavours and ``n_images`` registry images."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
    data = CloudData(now=now)
    add_admin(data)
    projects = [data.add_project(f"vo{p}-project", id=uuid.UUID(int=rng.getrandbits(128)).hex,
                                 extra={"egi.VO": f"vo{p}.example.org"}).id for p in range(n_shares)]
    for pid in projects:
        data.quotas[pid] = {"instances": 100, "cores": 400, "ram": 819200}
    for f in range(n_flavors):
        data.add_flavor(f"flavor-{f:03d}", f"f{f}.size", 1 + f % 32, 1024 * (1 + f % 64), 10 + f % 200,
                        extra_specs=dict(SPECS[f % len(SPECS)]), is_public=f % 10 != 9)
    data.add_hypervisor("compute-01", vcpus=4096, memory_mb=16 * 1024 * 1024)
    attributes = json.dumps({"ad:base_mpuri": "https://appdb.egi.eu/store/vo/image/x/", "ad:appid": "1234",
                             "hv:version": "2026.11.01", "sl:os": "Linux", "sl:osname": "Ubuntu",
                             "sl:osversion": "22.04", "hv:format": "qcow2", "ad:group": "EGI",
                             "dc:description": "A registry image with the usual metadata " * 4})
    for i in range(n_images):
        kind = i % 5  # 1 in 5 public, 1 in 5 shared with two other projects, the rest private
        owner = projects[i % n_shares]
        visibility = "public" if kind == 0 else ("shared" if kind == 1 else "private")
        image = data.add_image(f"image {i}", owner, id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                               visibility=visibility, disk_format="qcow2", size=(1 + i % 20) << 30,
                               created_at=now - timedelta(days=i % 300),
                               properties={"os_distro": "ubuntu", "os_version": "22.04", "architecture": "x86_64",
                                           "vmcatcher_event_ad_mpuri":
                                               f"https://appdb.egi.eu/store/vo/image/{i:08d}:{i % 97}/",
                                           "vmcatcher_event_dc_description": f"Image number {i}",
                                           "APPLIANCE_ATTRIBUTES": attributes})
        if kind == 1:
            for other in (projects[(i + 1) % n_shares], projects[(i + 2) % n_shares]):
                image.members[other] = SimImageMember(other, "accepted", now, now)
    for p, pid in enumerate(projects):
        user = data.add_user(f"user-{p}", projects=(pid,)).id
        for v in range(4):
            data.boot_server(pid, user, f"flavor-{(p + v) % n_flavors:03d}", name=f"vm-{p}-{v}",
                             created=now - timedelta(days=v + 1),
                             status=("ACTIVE", "SHUTOFF", "SUSPENDED", "ACTIVE")[v])
    add_member_user(data, projects, private_flavors=[f for f in data.flavors if not data.flavors[f].is_public])
    data.touch()
    return data


def write_config(directory: Path, sim: OpenStackSim) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auth = "\n".join(f"    {k}: {v}" for k, v in dict(sim.auth, page_size=1000).items())
    path = directory / "fedcloud-site.yaml"
    path.write_text(f"""\
site: {{name: BENCH-SITE, endpoint: "{sim.auth_url}", gocdb_service_id: 1G0}}
cloud:
  backend: openstack
  openstack:
{auth}
cloudinfo:
  state_dir: {directory}/state
  cache_dir: {directory}/cache
  endpoint: {{authentication: password, interface_version: "2.0", implementation_version: "2.96"}}
""")
    return path


def run_ours(directory: Path, sim: OpenStackSim) -> Dict[str, Any]:
    config = write_config(directory, sim)
    result = subprocess.run([sys.executable, "-c", CHILD, str(config), str(directory / "out.ldif"),
                             str(directory / "out.json")], capture_output=True, timeout=3600, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    if result.returncode != 0:
        raise RuntimeError(f"our render failed: {result.stderr.decode(errors='replace')[-3000:]}")
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--shares", type=int, default=50)
    parser.add_argument("--flavors", type=int, default=100)
    parser.add_argument("--no-cip", action="store_true", help="skip cloud-info-provider")
    parser.add_argument("--no-scaling", action="store_true", help="skip the runs with fewer images")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cloudinfo-bench-"))
    print(f"site: {args.images} images, {args.flavors} flavours, {args.shares} shares (OpenStack simulator)")

    scaling: List[Dict[str, Any]] = []
    counts = [args.images] if args.no_scaling else sorted({args.images // 4, args.images // 2, args.images})
    for n in counts:
        with OpenStackSim(make_cloud(n, args.shares, args.flavors), max_limit=1000) as sim:
            figures = run_ours(work / f"ours-{n}", sim)
        figures["n"] = n
        scaling.append(figures)
        print(f"ours  {n:6d} images: fetch {figures['fetch_s']:6.2f} s  render LDIF+JSON {figures['render_s']:5.2f} s"
              f"  total {figures['total_s']:6.2f} s  model RSS {figures['model_rss_mb']:6.1f} MB  peak RSS "
              f"{figures['peak_rss_mb']:6.1f} MB  (render raised the peak by "
              f"{figures['peak_rss_mb'] - figures['peak_before_render_mb']:4.1f} MB)  LDIF {figures['ldif_entries']} "
              f"entries {figures['ldif_mb']:.1f} MB  JSON "
              f"{figures['json_mb']:.1f} MB  {figures['requests']} API requests")
    ours = scaling[-1]

    if args.no_cip:
        return 0
    venv = Path(os.environ.get("FEDCLOUD_SITE_CIP_VENV") or work / "cip-venv")
    try:
        python = ensure_venv(venv)
    except CipUnavailable as exc:
        print(f"cloud-info-provider: not run ({exc})")
        return 0
    with OpenStackSim(make_cloud(args.images, args.shares, args.flavors), max_limit=1000) as sim:
        projects = {sim.data.projects[p].extra["egi.VO"]: p for p in sim.data.projects
                    if "egi.VO" in sim.data.projects[p].extra}
        site = site_file(work / "cip-site.yaml", "BENCH-SITE", sim.auth_url, projects)
        sim.server.reset_counts()
        run = run_cip(python, sim.auth_url, site, "1G0", "BENCH-SITE", work / "cip", timeout=7200)
        cip_requests = sim.server.total_requests
    if run.returncode != 0:
        print(f"cloud-info-provider failed: {run.stderr.decode(errors='replace')[-2000:]}")
        return 1
    document = json.loads(run.stdout)
    objects = sum(len(v) for v in document.values())
    print(f"cloud-info-provider 1.2.0 {args.images:6d} images: total {run.seconds:7.2f} s  peak RSS "
          f"{(run.max_rss_kb or 0) / 1024:6.1f} MB  JSON {len(run.stdout) / 1e6:.1f} MB ({objects} objects, "
          f"{len(document.get('CloudComputingImage', []))} image copies)  {cip_requests} API requests")
    print(f"speed-up (cloud-info-provider total / our total, JSON and LDIF): {run.seconds / ours['total_s']:.1f}x"
          f"   (goal >= 5x)")
    growth = [f"{s['n']}: +{max(0.0, s['peak_rss_mb'] - s['model_rss_mb']):.1f} MB" for s in scaling]
    print(f"peak RSS above the model's RSS, by images: {', '.join(growth)}   (goal: flat; the LDIF and JSON "
          f"are streamed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
