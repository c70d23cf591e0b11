"""Filling a :class:`CloudData`: a seeded synthetic site, or a static-backend site description.

Both start with the administrator every simulator has: user ``admin`` (password
``secret``) in domain ``Default`` with the ``admin`` role on project ``admin``
and on the system, as in a fresh devstack.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Union

import yaml

from ..times import parse_time
from .model import STATUS_ACTIONS, CloudData, SimAddress, SimImageMember, SimServer

ADMIN_USER = "admin"
ADMIN_PASSWORD = "secret"
ADMIN_PROJECT = "admin"

#: static-backend VM status (a VMState value) -> Nova status
STATIC_TO_NOVA_STATUS = {
    "pending": "BUILD",
    "running": "ACTIVE",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "stopped": "SHUTOFF",
    "error": "ERROR",
    "deleted": "DELETED",
    "unknown": "UNKNOWN",
}

#: generated flavours: (name, vcpus, ram MiB, disk GiB, ephemeral GiB, extra specs, public)
GENERATED_FLAVORS = [
    ("m1.tiny", 1, 512, 1, 0, {}, True),
    ("m1.small", 1, 2048, 20, 0, {}, True),
    ("m1.medium", 2, 4096, 40, 0, {"accounting:benchmark_type": "HEPSPEC06", "accounting:benchmark_value": "9.5"},
     True),
    ("m1.large", 4, 8192, 80, 20, {"accounting:benchmark_type": "HEPSPEC06", "accounting:benchmark_value": "10.5"},
     True),
    ("m1.xlarge", 8, 16384, 160, 0, {"hw:cpu_policy": "dedicated"}, True),
    ("g1.a100", 8, 65536, 100, 0, {"Accelerator:Type": "GPU", "Accelerator:Vendor": "NVIDIA",
                                   "Accelerator:Model": "A100", "Accelerator:Number": "1",
                                   "pci_passthrough:alias": "a100:1"}, False),
]

#: (weight, Nova status) of live generated VMs
LIVE_STATUS_MIX = [(80, "ACTIVE"), (6, "SHUTOFF"), (5, "SUSPENDED"), (3, "PAUSED"), (3, "ERROR"), (2, "BUILD"),
                   (1, "SHELVED_OFFLOADED")]


def add_admin(data: CloudData, password: str = ADMIN_PASSWORD) -> None:
    """The cloud administrator (idempotent)."""
    if data.find_user(ADMIN_USER) is not None:
        return
    project = data.find_project(ADMIN_PROJECT) or data.add_project(ADMIN_PROJECT, description="Bootstrap project")
    user = data.add_user(ADMIN_USER, password=password, email="admin@example.org")
    data.grant(user.id, "admin", project_id=project.id)
    data.grant(user.id, "admin", system=True)


def _seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate(seed: int = 0, n_projects: int = 3, vms_per_project: int = 20, deleted_fraction: float = 0.2,
             changed_fraction: float = 0.1, users_per_project: int = 3, n_images: int = 5,
             fips_per_project: int = 2, volumes_per_project: int = 2, history_days: int = 90,
             now: Optional[datetime] = None, hypervisors: int = 4, region: str = "RegionOne") -> CloudData:
    """A deterministic synthetic cloud.

    Each project gets ``vms_per_project`` servers created over the last
    ``history_days``; ``deleted_fraction`` of them are deleted (returned by Nova
    only with ``changes-since``), ``changed_fraction`` of the live ones changed
    status in the last day.  The clock is fixed at ``now`` (default: the start of
    the current hour, real time).
    """
    if now is None:
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    data = CloudData(now=now, region=region)
    add_admin(data)
    for name, vcpus, ram, disk, ephemeral, specs, public in GENERATED_FLAVORS:
        data.add_flavor(name.replace(".", "-") + "-id", name, vcpus, ram, disk, ephemeral=ephemeral,
                        extra_specs=dict(specs), is_public=public)
    flavor_ids = list(data.flavors)
    for i in range(hypervisors):
        data.add_hypervisor(f"compute-{i:02d}", vcpus=128, memory_mb=512 * 1024, local_gb=4000)
    hosts = [h.hostname for h in data.hypervisors.values()]
    admin_project = data.find_project(ADMIN_PROJECT)
    assert admin_project is not None
    images: List[str] = []
    for i in range(n_images):
        image = data.add_image(f"image-{i}", admin_project.id, id=_seeded_uuid(rng), visibility="public",
                               created_at=now - timedelta(days=history_days + 10 - i), disk_format="qcow2",
                               size=1 << 30,
                               checksum=hashlib.md5(f"img{i}".encode(), usedforsecurity=False).hexdigest(),
                               os_hash_algo="sha512", os_hash_value=hashlib.sha512(f"img{i}".encode()).hexdigest(),
                               properties={"os_distro": "ubuntu", "os_version": "22.04",
                                           "vmcatcher_event_ad_mpuri": f"https://appdb.egi.eu/store/vo/image/{i}:1/"})
        images.append(image.id)
    public_net = data.public_network()
    statuses = [status for weight, status in LIVE_STATUS_MIX for _ in range(weight)]
    fip_pool = ipaddress.ip_network("198.51.100.0/22").hosts()
    for p in range(n_projects):
        project = data.add_project(f"project-{p}", id=uuid.UUID(int=rng.getrandbits(128)).hex,
                                   tags=["fedcloud"] if p % 2 == 0 else [],
                                   extra={"egi.VO": f"vo{p}.example.org"})
        data.quotas[project.id] = {"instances": 10 + vms_per_project, "cores": 4 * (10 + vms_per_project),
                                   "ram": 8192 * (10 + vms_per_project)}
        net = data.add_network(f"private-{p}", project.id)
        users = [data.add_user(f"user-{p}-{u}", id=uuid.UUID(int=rng.getrandbits(128)).hex, projects=(project.id,),
                               email=f"user-{p}-{u}@example.org").id for u in range(max(1, users_per_project))]
        for v in range(vms_per_project):
            created = now - timedelta(seconds=rng.randint(3600, history_days * 86400))
            server_id = _seeded_uuid(rng)
            ip = f"10.{p % 250}.{v // 250}.{v % 250 + 2}"
            server = data.boot_server(project.id, rng.choice(users), rng.choice(flavor_ids),
                                      image_id=rng.choice(images) if images and rng.random() < 0.95 else None,
                                      name=f"vm-{p}-{v}", id=server_id, created=created, host=rng.choice(hosts),
                                      addresses=[SimAddress(net.name, ip, 4, "fixed")])
            roll = rng.random()
            if roll < deleted_fraction:
                server.status = "DELETED"
                server.updated = server.terminated_at = created + (now - created) * rng.random()
            else:
                server.status = rng.choice(statuses)
                if server.status == "BUILD":
                    server.launched_at = None
                if roll < deleted_fraction + changed_fraction:
                    server.updated = now - timedelta(seconds=rng.randint(60, 86400))
                else:
                    server.updated = created + timedelta(seconds=rng.randint(1, 600))
            _last_action(data, server)
        live = [s for s in data.servers.values() if s.project_id == project.id and not s.deleted]
        for f in range(fips_per_project):
            target = live[f].id if f < len(live) and f % 2 == 0 else None
            data.add_floating_ip(str(next(fip_pool)), project.id, server_id=target,
                                 created=now - timedelta(days=rng.randint(1, history_days)), id=_seeded_uuid(rng))
        for n in range(volumes_per_project):
            volume = data.add_volume(f"vol-{p}-{n}", project.id, users[0], size=rng.choice((10, 50, 100)),
                                     created=now - timedelta(days=rng.randint(1, history_days)), id=_seeded_uuid(rng))
            if n % 3 == 2:
                volume.status = "deleted"
                volume.deleted_at = volume.updated_at = now - timedelta(days=rng.randint(0, 2), hours=1)
    del public_net
    _size_hypervisors(data)
    data.touch()
    return data


def _size_hypervisors(data: CloudData, headroom: float = 1.5) -> None:
    """Give every hypervisor room for its live servers (capacity reports stay plausible at any scale)."""
    for hypervisor in data.hypervisors.values():
        servers = data.live_servers_on(hypervisor.hostname)
        vcpus = sum(s.flavor["vcpus"] for s in servers)
        ram = sum(s.flavor["ram"] for s in servers)
        hypervisor.vcpus = max(hypervisor.vcpus, int(vcpus * headroom) // 64 * 64 + 64)
        hypervisor.memory_mb = max(hypervisor.memory_mb, int(ram * headroom) // 65536 * 65536 + 65536)


# -- static-backend site descriptions ----------------------------------------------------------------------
def _time(value: Any, where: str) -> Optional[datetime]:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _hex_id(value: str) -> str:
    """Keystone ids are 32 hex digits; keep valid ones, derive one from other names."""
    text = str(value)
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return text
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def from_site(description: Union[str, Path, Mapping[str, Any]], now: Optional[datetime] = None,
              region: str = "RegionOne") -> CloudData:
    """A cloud serving the same site as the static backend's description (file path or parsed mapping).

    Project, flavour, image, VM, volume and floating-IP ids are kept, so records
    read through the simulator match those of the static backend.  Users named
    by VMs but not listed are created (name = ``user_name`` or the id).  A private
    flavour's ``projects`` become its Nova access list; one without ``projects`` is
    opened to every project of the description (the static backend offers it to all).
    A project's ``domain`` is a Keystone domain name (or id); domains not yet known
    are created with that name.
    """
    if isinstance(description, (str, Path)):
        where = str(description)
        site = yaml.safe_load(Path(description).read_text(encoding="utf-8")) or {}
    else:
        where, site = "site", dict(description)
    data = CloudData(now=now, region=region)
    add_admin(data)
    for p in site.get("projects") or []:
        props = {str(k): str(v) for k, v in (p.get("properties") or {}).items()}
        domain_name = str(p.get("domain") or "Default")
        domain = data.find_domain(domain_name) or data.add_domain(domain_name)
        data.add_project(str(p.get("name", p["id"])), id=str(p["id"]), enabled=bool(p.get("enabled", True)),
                         domain_id=domain.id, description=str(p.get("description", "")),
                         tags=[str(t) for t in p.get("tags") or []], extra=props)
    for i, f in enumerate(site.get("flavors") or []):
        flavor = data.add_flavor(str(f["id"]), str(f.get("name", f["id"])), int(f["vcpus"]), int(f["ram"]),
                                 int(f.get("disk", 0)), ephemeral=int(f.get("ephemeral", 0)),
                                 is_public=bool(f.get("public", True)),
                                 extra_specs={str(k): str(v) for k, v in (f.get("extra_specs") or {}).items()})
        if flavor.is_public:
            continue  # Nova keeps no access list for public flavours
        allowed = [str(p) for p in f["projects"]] if f.get("projects") is not None else list(data.projects)
        for project_id in allowed:
            if project_id not in data.projects:
                raise ValueError(f"{where}: flavors[{i}] ({flavor.id}): projects names {project_id}, which is not "
                                 "among the projects")
            data.add_flavor_access(flavor.id, project_id)
    for i, im in enumerate(site.get("images") or []):
        created = _time(im.get("created_at"), f"{where}: images[{i}]") or data.now()
        image = data.add_image(str(im.get("name", im["id"])), im.get("owner"), id=str(im["id"]),
                               status=str(im.get("status", "active")),
                               visibility=str(im.get("visibility", "shared")), disk_format=im.get("disk_format"),
                               container_format=im.get("container_format", "bare"), size=im.get("size"),
                               checksum=im.get("checksum"), min_ram=int(im.get("min_ram_mb", 0)),
                               min_disk=int(im.get("min_disk_gb", 0)), created_at=created,
                               updated_at=_time(im.get("updated_at"), f"{where}: images[{i}]") or created,
                               properties={str(k): str(v) for k, v in (im.get("properties") or {}).items()})
        for member in im.get("members") or []:
            image.members[str(member)] = SimImageMember(str(member), "accepted", created, created)
    known_users: Dict[str, str] = {}
    for u in site.get("users") or []:
        projects = tuple(str(g) for g in u.get("groups") or [] if str(g) in data.projects)
        user = data.add_user(str(u["name"]), id=str(u["id"]), projects=projects, email=u.get("email"),
                             enabled=bool(u.get("enabled", True)), description=u.get("display_name"))
        known_users[user.id] = user.name
    for v in site.get("vms") or []:
        user_id = str(v["user"])
        if user_id not in data.users:
            data.add_user(str(v.get("user_name") or user_id), id=user_id, projects=(str(v["project"]),))
    hosts: Set[str] = set()
    for i, v in enumerate(site.get("vms") or []):
        here = f"{where}: vms[{i}] ({v.get('id', '?')})"
        booted = _time(v.get("created"), here)
        if booted is None:
            raise ValueError(f"{here}: missing created")
        status = STATIC_TO_NOVA_STATUS.get(str(v.get("status", "running")).lower(), "UNKNOWN")
        flavor_id = str(v["flavor"]) if v.get("flavor") is not None else None
        if flavor_id is None or flavor_id not in data.flavors:
            flavor_id = _adhoc_flavor(data, v, flavor_id)
        addresses = [SimAddress("public" if a.get("public") else "private", str(a["address"]),
                                int(a.get("version", 4)), "floating" if a.get("floating") else "fixed")
                     for a in v.get("addresses") or []]
        server = data.boot_server(str(v["project"]), str(v["user"]), flavor_id,
                                  image_id=str(v["image"]) if v.get("image") else None,
                                  name=str(v.get("name", v["id"])), id=str(v["id"]), created=booted,
                                  host=v.get("host") or "compute-01", addresses=addresses, status="ACTIVE")
        hosts.add(server.host or "compute-01")
        _apply_static_status(server, status, _time(v.get("ended"), here), _time(v.get("updated"), here))
        _last_action(data, server)
    for i, f in enumerate(site.get("floating_ips") or []):
        allocated = _time(f.get("created"), f"{where}: floating_ips[{i}]")
        attached = next((s.id for s in data.servers.values()
                         if any(a.addr == str(f["address"]) for a in s.addresses)), None)
        fip = data.add_floating_ip(str(f["address"]), str(f["project"]), created=allocated,
                                   id=str(f.get("id", f["address"])))
        if attached is not None or f.get("attached"):
            fip.port_id = attached or "port-" + fip.id
    for i, vol in enumerate(site.get("volumes") or []):
        here = f"{where}: volumes[{i}]"
        volume = data.add_volume(str(vol.get("name", vol["id"])), str(vol["project"]), str(vol.get("user") or ""),
                                 int(vol["size"]), created=_time(vol.get("created"), here), id=str(vol["id"]))
        volume.status = str(vol.get("status", "available"))
        deleted = _time(vol.get("deleted"), here)
        if deleted is not None:
            volume.status, volume.deleted_at, volume.updated_at = "deleted", deleted, deleted
    capacity = site.get("capacity") or {}
    if capacity:
        hypervisor = data.add_hypervisor(sorted(hosts)[0] if hosts else "compute-01",
                                         vcpus=int(capacity.get("total_vcpus") or 0),
                                         memory_mb=int(capacity.get("total_ram_mb") or 0))
        if capacity.get("hypervisor"):
            hypervisor.hypervisor_type = "QEMU" if capacity["hypervisor"] == "KVM" else str(capacity["hypervisor"])
        if capacity.get("hypervisor_version"):
            parts = [int(x) for x in str(capacity["hypervisor_version"]).split(".")[:3]] + [0, 0]
            hypervisor.hypervisor_version = parts[0] * 1000000 + parts[1] * 1000 + parts[2]
    for project_id, q in (site.get("quotas") or {}).items():
        data.quotas[str(project_id)] = {"instances": q.get("instances"), "cores": q.get("cores"),
                                        "ram": q.get("ram_mb")}
    data.touch()
    return data


def _adhoc_flavor(data: CloudData, vm: Mapping[str, Any], flavor_id: Optional[str]) -> str:
    """A private flavour for a VM whose sizes are given without a listed flavour."""
    fid = flavor_id or f"adhoc-{vm.get('vcpus', 1)}-{vm.get('ram', 1024)}-{vm.get('disk', 0)}"
    if fid not in data.flavors:
        data.add_flavor(fid, fid, int(vm.get("vcpus", 1)), int(vm.get("ram", 1024)), int(vm.get("disk", 0)),
                        is_public=False)
    return fid


def _last_action(data: CloudData, server: SimServer) -> None:
    """The instance action that put a server straight into its status at its ``updated`` time (the create
    action alone for a server unchanged since its build; none while it builds)."""
    if server.status == "BUILD":
        server.actions = [a for a in server.actions if a.action != "create"]
        return
    if server.updated <= server.created:
        return
    if server.status == "DELETED":
        data.add_action(server, "delete", server.updated)
    elif server.status in STATUS_ACTIONS:
        data.add_action(server, STATUS_ACTIONS[server.status]["*"], server.updated)


def _apply_static_status(server: SimServer, status: str, ended: Optional[datetime],
                         updated: Optional[datetime]) -> None:
    server.status = status
    if status == "DELETED":
        end = ended or updated or server.created
        server.terminated_at = end
        server.updated = end
    else:
        server.updated = updated or server.created
    if status == "BUILD":
        server.launched_at = None
