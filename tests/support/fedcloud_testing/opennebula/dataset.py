"""Simulated clouds: a seeded synthetic site of any size, or a static-backend site description.

:func:`generate` builds a deterministic site from a seed (groups, users with
X.509 DNs, templates, images with marketplace URIs, hosts with benchmarks, and
VMs in every state with history records).  :func:`from_static` turns the YAML
site description of the ``static`` backend (see :mod:`fedcloud_site.cloud.static`)
into the same site as OpenNebula would hold it, so one site can be served by
both backends; ``cloud.id_map`` maps the description's ids to OpenNebula ids.  A private
flavour becomes a template usable by the group of its one project (``projects``), else by
its owner only (several projects are refused: a template has one group).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import yaml
from pyone import LCM_STATE, VM_STATE

from ..times import parse_time, to_epoch
from .model import (
    OWNER_ONLY,
    Permissions,
    SimCloud,
    SimCluster,
    SimDatastore,
    SimGroup,
    SimHistory,
    SimHost,
    SimImage,
    SimTemplate,
    SimUser,
    SimVM,
    action_code,
)

ADMIN_GROUP, USERS_GROUP = 0, 1
SYSTEM_DS, IMAGE_DS, FILES_DS = 0, 1, 2

#: VMState value of the static description -> (STATE, LCM_STATE) names
STATIC_STATES: Dict[str, Tuple[str, str]] = {
    "pending": ("PENDING", "LCM_INIT"),
    "running": ("ACTIVE", "RUNNING"),
    "paused": ("SUSPENDED", "LCM_INIT"),
    "suspended": ("SUSPENDED", "LCM_INIT"),
    "stopped": ("POWEROFF", "LCM_INIT"),
    "error": ("ACTIVE", "FAILURE"),
    "deleted": ("DONE", "LCM_INIT"),
    "unknown": ("ACTIVE", "UNKNOWN"),
}


def _state(name: str) -> int:
    return int(VM_STATE[name].value)


def _lcm(name: str) -> int:
    return int(LCM_STATE[name].value)


def attribute_name(key: str) -> str:
    """A property key as an OpenNebula attribute name: upper case, only ``[A-Z0-9_]``."""
    return re.sub(r"[^A-Z0-9_]", "_", key.upper())


def ensure_admin(cloud: SimCloud, username: str = "oneadmin", password: str = "opennebula") -> SimUser:
    """The base objects every oned has: groups oneadmin/users, user 0, cluster default, datastores."""
    cloud.groups.setdefault(ADMIN_GROUP, SimGroup(ADMIN_GROUP, "oneadmin"))
    cloud.groups.setdefault(USERS_GROUP, SimGroup(USERS_GROUP, "users"))
    cloud.clusters.setdefault(0, SimCluster(0, "default"))
    cloud.datastores.setdefault(SYSTEM_DS, SimDatastore(SYSTEM_DS, "system", 1, ds_mad="-",
                                                        base_path="/var/lib/one//datastores/0"))
    cloud.datastores.setdefault(IMAGE_DS, SimDatastore(IMAGE_DS, "default", 0, base_path="/var/lib/one//datastores/1"))
    cloud.datastores.setdefault(FILES_DS, SimDatastore(FILES_DS, "files", 2, base_path="/var/lib/one//datastores/2"))
    for user in cloud.users.values():
        if user.name == username:
            return user
    admin = SimUser(id=0 if 0 not in cloud.users else cloud.next_id(cloud.users), name=username, password=password,
                    gid=ADMIN_GROUP, groups=[ADMIN_GROUP])
    cloud.users[admin.id] = admin
    return admin


def _add_host(cloud: SimCloud, name: str, cores: int = 64, mem_gb: int = 256,
              template: Optional[Dict[str, Any]] = None) -> SimHost:
    host = SimHost(id=cloud.next_id(cloud.hosts), name=name, cluster_id=0, total_cpu=cores * 100,
                   total_mem_kb=mem_gb * 1024 * 1024,
                   template={"HYPERVISOR": "kvm", "ARCH": "x86_64", **(template or {})})
    cloud.hosts[host.id] = host
    return host


def _history(vm: SimVM, host: SimHost, start: int, end: Optional[int], action: str) -> SimHistory:
    record = SimHistory(seq=len(vm.history), hid=host.id, hostname=host.name, cid=host.cluster_id, stime=start,
                        pstime=start, petime=start, rstime=start, vm_mad=host.vm_mad)
    if end is not None:
        record.retime = record.estime = record.eetime = record.etime = end
        record.action = action_code(action)
    vm.history.append(record)
    return record


def fit_hosts(cloud: SimCloud) -> None:
    """Grow hosts so that the VMs running on them use at most 80% of their CPU and memory."""
    for host in cloud.hosts.values():
        cpu = mem = 0.0
        for vm in cloud.vms.values():
            if vm.state == _state("ACTIVE") and vm.history and vm.history[-1].hid == host.id \
                    and not vm.history[-1].etime:
                cpu += float(vm.template.get("CPU", 0) or 0)
                mem += float(vm.template.get("MEMORY", 0) or 0)
        host.total_cpu = max(host.total_cpu, int(cpu * 125) // 100 * 100)
        host.total_mem_kb = max(host.total_mem_kb, int(mem * 1024 * 1.25))


# -- synthetic sites --------------------------------------------------------------------------------
_STATE_MIX: List[Tuple[float, str, str]] = [
    (0.40, "ACTIVE", "RUNNING"), (0.30, "DONE", "LCM_INIT"), (0.07, "POWEROFF", "LCM_INIT"),
    (0.05, "SUSPENDED", "LCM_INIT"), (0.03, "STOPPED", "LCM_INIT"), (0.03, "UNDEPLOYED", "LCM_INIT"),
    (0.04, "PENDING", "LCM_INIT"), (0.02, "HOLD", "LCM_INIT"), (0.02, "ACTIVE", "BOOT_FAILURE"),
    (0.02, "ACTIVE", "UNKNOWN"), (0.01, "CLONING", "LCM_INIT"), (0.01, "ACTIVE", "PROLOG"),
]


def generate(n_vms: int = 100, seed: int = 1, now: Optional[int] = None, n_groups: int = 5, n_users: int = 20,
             n_hosts: int = 8, n_images: int = 10, span_days: int = 120, password: str = "opennebula") -> SimCloud:
    """A deterministic site with ``n_vms`` VMs spread over ``span_days`` before ``now``."""
    rng = random.Random(seed)
    cloud = SimCloud(now=now if now is not None else 1_800_000_000)
    now_s = cloud.now()
    ensure_admin(cloud, password=password)
    cloud.clusters[0].template = {"BENCHMARK_TYPE": "HEPSPEC06", "BENCHMARK_VALUE": "9.5"}
    for g in range(n_groups):
        vo = f"vo{g}.example.eu"
        cloud.groups[100 + g] = SimGroup(100 + g, vo, template={"VO": vo},
                                         quota={"VMS": str(1000 + g), "CPU": "4000", "MEMORY": str(8 << 20)})
    group_ids = sorted(i for i in cloud.groups if i >= 100)
    for u in range(n_users):
        gid = group_ids[u % len(group_ids)]
        dn = f"/DC=eu/DC=example/CN=User {u}"
        user = SimUser(id=cloud.next_id(cloud.users), name=f"user{u}", password=x509_password([dn]),
                       gid=gid, groups=[gid], auth_driver="x509",
                       template={"X509_DN": dn, "EMAIL": f"user{u}@example.eu"})
        cloud.users[user.id] = user
    for h in range(n_hosts):
        extra = {"BENCHMARK_TYPE": "HEPSPEC06", "BENCHMARK_VALUE": f"{10 + h % 3}.0"} if h % 2 == 0 else {}
        _add_host(cloud, f"node{h:02d}.example.eu", template=extra)
    flavors = [("small", 1, 1, 2048, 20), ("medium", 2, 2, 4096, 40), ("large", 4, 4, 8192, 80),
               ("gpu", 8, 8, 65536, 100)]
    for name, cpu, vcpu, mem, disk_gb in flavors:
        tid = cloud.next_id(cloud.templates)
        tmpl: Dict[str, Any] = {"CPU": str(cpu), "VCPU": str(vcpu), "MEMORY": str(mem),
                                "DISK": {"IMAGE_ID": "0", "SIZE": str(disk_gb * 1024)}}
        if name == "gpu":
            tmpl["PCI"] = {"VENDOR": "10de", "DEVICE": "20b0", "CLASS": "0302", "DEVICE_NAME": "NVIDIA A100"}
        cloud.templates[tid] = SimTemplate(tid, 0, 0, name, regtime=now_s - span_days * 86400, template=tmpl,
                                           permissions=(1, 1, 0, 1, 0, 0, 1, 0, 0))
    for i in range(n_images):
        gid = group_ids[i % len(group_ids)]
        mpuri = f"https://appdb.egi.eu/store/vo/image/{rng.getrandbits(64):016x}:{1000 + i}/"
        cloud.images[i] = SimImage(id=i, uid=0, gid=gid, name=f"image-{i}", datastore_id=IMAGE_DS,
                                   regtime=now_s - span_days * 86400, size_mb=1024 + 256 * i,
                                   source=f"/var/lib/one/datastores/1/{i:032x}",
                                   template={"VMCATCHER_EVENT_AD_MPURI": mpuri, "DESCRIPTION": f"Image {i}"},
                                   permissions=(1, 1, 0, 1, 0, 0, 0, 0, 0))
    cum = []
    total = 0.0
    for weight, state, lcm in _STATE_MIX:
        total += weight
        cum.append((total, state, lcm))
    hosts = sorted(cloud.hosts)
    template_ids = sorted(cloud.templates)
    user_ids = sorted(i for i in cloud.users if i != 0)
    span = span_days * 86400
    for n in range(n_vms):
        # ids grow with creation time, as in oned
        stime = now_s - span + int(span * n / max(n_vms, 1)) + rng.randint(0, 59)
        pick = rng.random() * total
        state, lcm = next((s, c) for limit, s, c in cum if pick <= limit)
        uid = user_ids[rng.randrange(len(user_ids))] if user_ids else 0
        owner = cloud.users[uid]
        tmpl_obj = cloud.templates[template_ids[rng.randrange(len(template_ids))]]
        image = cloud.images[rng.randrange(n_images)] if n_images else None
        vm_template: Dict[str, Any] = {k: v for k, v in tmpl_obj.template.items() if k != "DISK"}
        vm_template["TEMPLATE_ID"] = str(tmpl_obj.id)
        disk: Dict[str, str] = {"DISK_ID": "0", "SIZE": tmpl_obj.template["DISK"]["SIZE"],
                                "DATASTORE_ID": str(IMAGE_DS)}
        if image is not None:
            disk.update({"IMAGE_ID": str(image.id), "IMAGE": image.name,
                         "VMCATCHER_EVENT_AD_MPURI": image.template["VMCATCHER_EVENT_AD_MPURI"]})
        vm_template["DISK"] = disk
        nics = [{"NIC_ID": "0", "IP": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "NETWORK": "private"}]
        if n % 4 == 0:
            nics.append({"NIC_ID": "1", "IP": f"193.0.{n >> 8 & 255}.{n & 255}", "NETWORK": "public",
                         "IP6_GLOBAL": f"2001:db8::{n:x}"})
        vm_template["NIC"] = nics if len(nics) > 1 else nics[0]
        vm = SimVM(id=n, uid=uid, gid=owner.gid, name=f"vm-{n}", state=_state(state), lcm_state=_lcm(lcm),
                   stime=stime, template=vm_template, uname=owner.name, gname=cloud.groups[owner.gid].name,
                   user_template={"USER_X509_DN": owner.template["X509_DN"]} if n % 3 == 0 else {})
        ran_on_host = state in ("ACTIVE", "DONE", "POWEROFF", "SUSPENDED", "STOPPED", "UNDEPLOYED") and \
            lcm not in ("PROLOG",)
        if ran_on_host:
            n_records = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
            open_last = state == "ACTIVE"
            age = now_s - stime
            # VMs that are gone lived hours to weeks; the others are still around
            end_all = now_s if open_last else min(now_s - 60, stime + 60 + int(rng.expovariate(1 / (5 * 86400))))
            end_all = max(end_all, stime + 90) if age > 120 else now_s
            t = stime + 30
            for r in range(n_records):
                host = cloud.hosts[hosts[rng.randrange(len(hosts))]]
                last = r == n_records - 1
                if last and open_last:
                    _history(vm, host, t, None, "none")
                    break
                remaining = max(end_all - t, 2)
                stop = end_all if last else t + max(1, remaining // (n_records - r + 1))
                stop = min(max(stop, t + 1), now_s)
                action = {"DONE": "terminate", "POWEROFF": "poweroff", "SUSPENDED": "suspend",
                          "STOPPED": "stop", "UNDEPLOYED": "undeploy"}.get(state, "migrate") if last else \
                    rng.choice(["migrate", "poweroff", "suspend"])
                _history(vm, host, t, stop, action)
                t = min(stop + rng.randint(1, max(1, min(3600, remaining // 4))), now_s)
            if state == "DONE":
                vm.etime = vm.history[-1].etime
            rx = rng.randint(0, 1 << 34)
            vm.monitoring = {"CPU": f"{rng.random() * 100:.2f}", "MEMORY": str(int(vm_template['MEMORY']) * 1024),
                             "NETRX": str(rx), "NETTX": str(rx // 3), "TIMESTAMP": str(now_s - 30)}
        elif state == "DONE":
            vm.etime = stime + 60
        cloud.vms[vm.id] = vm
    fit_hosts(cloud)
    for image in cloud.images.values():
        users = [vm.id for vm in cloud.vms.values() if vm.state != _state("DONE")
                 and vm.template.get("DISK", {}).get("IMAGE_ID") == str(image.id)]
        image.vms, image.running_vms = users, len(users)
        image.state = 2 if users else 1  # USED / READY
    return cloud



def x509_password(dns: List[str]) -> str:
    """The password oned's x509 auth driver keeps for a user: its DNs joined by ``|``, each blank written as a
    backslash and its hex code (OpenNebula's x509_auth.rb ``escape``)."""
    return "|".join("".join("\\" + format(ord(c), "x") if c.isspace() else c for c in dn) for dn in dns)


# -- static site descriptions ---------------------------------------------------------------------------
def _epoch(value: Any, where: str) -> int:
    try:
        return to_epoch(parse_time(value))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _ids(cloud: SimCloud, kind: str) -> Dict[str, int]:
    return cloud.id_map.setdefault(kind, {})


def _assign(cloud: SimCloud, kind: str, key: Any, table: Mapping[int, Any], floor: int) -> int:
    mapping = _ids(cloud, kind)
    key = str(key)
    if key in mapping:
        return mapping[key]
    used = set(table) | set(mapping.values())
    if key.isdigit() and int(key) not in used and int(key) >= floor:
        oid = int(key)
    else:
        oid = max([floor - 1, *used]) + 1
    mapping[key] = oid
    return oid


def _spec_attributes(specs: Mapping[str, Any]) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for key, value in (specs or {}).items():
        if key.startswith("accounting:"):
            key = key.split(":", 1)[1]
        out[attribute_name(str(key))] = str(value)
    return out


def _template_access(flavor: Mapping[str, Any], groups: Mapping[str, int]) -> Tuple[int, Permissions]:
    """The group and permissions of a flavour's template: public (OTHER_U), private to the one project of its
    ``projects`` (GROUP_U in that group), else owner-only (oned has no "not told")."""
    if flavor.get("public", True):
        return ADMIN_GROUP, (1, 1, 0, 1, 0, 0, 1, 0, 0)
    allowed = [str(p) for p in flavor.get("projects") or []]
    if not allowed:
        return ADMIN_GROUP, OWNER_ONLY
    if len(allowed) > 1 or allowed[0] not in groups:
        raise ValueError(f"flavors[{flavor['id']}].projects: {allowed} is not one known project; an OpenNebula "
                         "template is private to one group only")
    return groups[allowed[0]], (1, 1, 0, 1, 0, 0, 0, 0, 0)


def from_static(source: Union[Path, str, Mapping[str, Any]], now: Optional[int] = None,
                password: str = "opennebula") -> SimCloud:
    """The site of a static-backend description (a path or the loaded mapping) as OpenNebula objects."""
    if isinstance(source, (str, Path)):
        data = yaml.safe_load(Path(source).read_text(encoding="utf-8")) or {}
    else:
        data = dict(source)
    cloud = SimCloud(now=now)
    ensure_admin(cloud, password=password)
    groups = _ids(cloud, "group")
    tmpl: Dict[str, Any]
    for p in data.get("projects") or []:
        gid = _assign(cloud, "group", p["id"], cloud.groups, 100)
        groups.setdefault(str(p.get("name", p["id"])), gid)
        tmpl = {attribute_name(k): str(v) for k, v in (p.get("properties") or {}).items()}
        if p.get("description"):
            tmpl["DESCRIPTION"] = str(p["description"])
        cloud.groups[gid] = SimGroup(gid, str(p.get("name", p["id"])), template=tmpl)
    for g in data.get("groups") or []:
        existing = next((x.id for x in cloud.groups.values() if x.name == str(g.get("name", g["id"]))), None)
        if existing is not None:
            groups[str(g["id"])] = existing
            continue
        gid = _assign(cloud, "group", g["id"], cloud.groups, 100)
        cloud.groups[gid] = SimGroup(gid, str(g.get("name", g["id"])))
    for project_id, q in (data.get("quotas") or {}).items():
        quota_gid = groups.get(str(project_id))
        if quota_gid is not None:
            cloud.groups[quota_gid].quota = {k: str(q[f]) for k, f in (("VMS", "instances"), ("CPU", "cores"),
                                                                 ("MEMORY", "ram_mb")) if q.get(f) is not None}
    capacity = data.get("capacity") or {}
    hypervisor = str(capacity.get("hypervisor") or "kvm")
    host_template = {"HYPERVISOR": hypervisor.lower()}
    if capacity.get("hypervisor_version"):
        host_template["HYPERVISOR_VERSION"] = str(capacity["hypervisor_version"])
    host_names = sorted({str(v["host"]) for v in data.get("vms") or [] if v.get("host")}) or ["host01"]
    per_host_cpu = int(capacity.get("total_vcpus") or 64 * len(host_names)) // len(host_names)
    per_host_mem = int(capacity.get("total_ram_mb") or 262144 * len(host_names)) // len(host_names)
    for name in host_names:
        host = _add_host(cloud, name, cores=per_host_cpu, template=host_template)
        host.total_mem_kb = per_host_mem * 1024
        _ids(cloud, "host")[name] = host.id

    users = _ids(cloud, "user")
    for u in data.get("users") or []:
        member = [groups[str(g)] for g in u.get("groups") or [] if str(g) in groups]
        dns = [str(d) for d in u.get("x509_dns") or []]
        tmpl = {attribute_name(k): str(v) for k, v in (u.get("properties") or {}).items()}
        if u.get("email"):
            tmpl["EMAIL"] = str(u["email"])
        if u.get("display_name"):
            tmpl["NAME"] = str(u["display_name"])
        if dns:
            tmpl["X509_DN"] = "|".join(dns)
        if u.get("ssh_keys"):
            tmpl["SSH_PUBLIC_KEY"] = "\n".join(u["ssh_keys"])
        uid = _assign(cloud, "user", u["id"], cloud.users, 2)
        cloud.users[uid] = SimUser(id=uid, name=str(u["name"]), password=x509_password(dns) or "changeme",
                                   gid=member[0] if member else USERS_GROUP, groups=member or [USERS_GROUP],
                                   auth_driver="x509" if dns else "core", enabled=bool(u.get("enabled", True)),
                                   template=tmpl)
        users.setdefault(str(u["name"]), uid)

    templates = _ids(cloud, "template")
    flavor_data: Dict[str, Mapping[str, Any]] = {}
    for f in data.get("flavors") or []:
        tid = _assign(cloud, "template", f["id"], cloud.templates, 0)
        flavor_data[str(f["id"])] = f
        tmpl = {"CPU": str(f["vcpus"]), "VCPU": str(f["vcpus"]), "MEMORY": str(f["ram"])}
        disks = [{"SIZE": str(int(f.get("disk", 0)) * 1024)}]
        if f.get("ephemeral"):
            disks.append({"TYPE": "fs", "SIZE": str(int(f["ephemeral"]) * 1024)})
        tmpl["DISK"] = disks if len(disks) > 1 else disks[0]
        tmpl.update(_spec_attributes(f.get("extra_specs") or {}))
        gid, perms = _template_access(f, groups)
        cloud.templates[tid] = SimTemplate(tid, 0, gid, str(f.get("name", f["id"])), regtime=0,
                                           template=tmpl, permissions=perms)
        templates.setdefault(str(f.get("name", f["id"])), tid)

    images = _ids(cloud, "image")
    for img in data.get("images") or []:
        iid = _assign(cloud, "image", img["id"], cloud.images, 0)
        gid = groups.get(str(img.get("owner")), ADMIN_GROUP) if img.get("owner") else ADMIN_GROUP
        visibility = str(img.get("visibility", "private"))
        perms = {"public": (1, 1, 0, 1, 0, 0, 1, 0, 0), "community": (1, 1, 0, 1, 0, 0, 1, 0, 0),
                 "shared": (1, 1, 0, 1, 0, 0, 0, 0, 0)}.get(visibility, (1, 1, 0, 0, 0, 0, 0, 0, 0))
        tmpl = {attribute_name(k): str(v) for k, v in (img.get("properties") or {}).items()}
        status = str(img.get("status", "active"))
        size = img.get("size")
        cloud.images[iid] = SimImage(
            id=iid, uid=0, gid=gid, name=str(img.get("name", img["id"])), datastore_id=IMAGE_DS,
            regtime=_epoch(img["created_at"], f"images {img['id']}") if img.get("created_at") else 0,
            state=4 if status not in ("active", "deactivated") else (3 if status == "deactivated" else 1),
            format=str(img.get("disk_format") or "raw"),
            size_mb=(int(size) + (1 << 20) - 1) >> 20 if size is not None else 0,
            source=f"/var/lib/one/datastores/1/{iid:032x}", template=tmpl, permissions=perms)

    for v in data.get("vms") or []:
        where = f"vms {v.get('id')}"
        vid = _assign(cloud, "vm", v["id"], cloud.vms, 0)
        state_name, lcm_name = STATIC_STATES[str(v.get("status", "running")).lower()]
        owner_key = str(v["user"])
        if owner_key not in users:
            gid = groups.get(str(v["project"]), USERS_GROUP)
            uid = _assign(cloud, "user", owner_key, cloud.users, 2)
            tmpl = {"X509_DN": str(v["user_name"])} if v.get("user_name") else {}
            login = x509_password([str(v["user_name"])]) if v.get("user_name") else "changeme"
            cloud.users[uid] = SimUser(id=uid, name=owner_key, password=login,
                                       gid=gid, groups=[gid], auth_driver="x509" if v.get("user_name") else "core",
                                       template=tmpl)
        uid = users[owner_key]
        gid = groups.get(str(v["project"]), USERS_GROUP)
        flavor = flavor_data.get(str(v.get("flavor")))
        vcpus = v.get("vcpus", flavor["vcpus"] if flavor else 1)
        ram = v.get("ram", flavor["ram"] if flavor else 0)
        disk_gb = v.get("disk", (int(flavor.get("disk", 0)) + int(flavor.get("ephemeral", 0))) if flavor else 0)
        vm_template: Dict[str, Any] = {"CPU": str(vcpus), "VCPU": str(vcpus), "MEMORY": str(ram)}
        if flavor is not None:
            vm_template["TEMPLATE_ID"] = str(templates[str(flavor.get("name", flavor["id"]))])
            vm_template.update(_spec_attributes(flavor.get("extra_specs") or {}))
        disk: Dict[str, str] = {"DISK_ID": "0", "SIZE": str(int(disk_gb) * 1024)}
        if v.get("image") is not None:
            image_key = str(v["image"])
            if image_key in images:
                image = cloud.images[images[image_key]]
                disk.update({"IMAGE_ID": str(image.id), "IMAGE": image.name})
                if "VMCATCHER_EVENT_AD_MPURI" in image.template:
                    disk["VMCATCHER_EVENT_AD_MPURI"] = image.template["VMCATCHER_EVENT_AD_MPURI"]
        vm_template["DISK"] = disk
        nics = []
        for i, a in enumerate(v.get("addresses") or []):
            nic = {"NIC_ID": str(i)}
            nic["IP6_GLOBAL" if int(a.get("version", 4)) == 6 else "IP"] = str(a["address"])
            nics.append(nic)
        if nics:
            vm_template["NIC"] = nics if len(nics) > 1 else nics[0]
        stime = _epoch(v["created"], where)
        vm = SimVM(id=vid, uid=uid, gid=gid, name=str(v.get("name", v["id"])), state=_state(state_name),
                   lcm_state=_lcm(lcm_name), stime=stime, template=vm_template,
                   uname=cloud.users[uid].name, gname=cloud.groups[gid].name if gid in cloud.groups else "",
                   user_template={"USER_X509_DN": str(v["user_name"])} if v.get("user_name") else {})
        host = cloud.hosts[_ids(cloud, "host").get(str(v.get("host")), min(cloud.hosts))]
        ended = _epoch(v["ended"], where) if v.get("ended") else None
        periods = v.get("run_periods")
        if periods is None and "launched" in v and v["launched"] is None:
            periods = []  # never ran: no history record
        elif periods is None and state_name in ("ACTIVE", "DONE"):
            periods = [[v.get("launched") or v["created"], v.get("ended")]]
        elif periods is None and state_name != "PENDING":
            # it ran from its start until it was stopped or suspended (when the description tells)
            begin = _epoch(v.get("launched") or v["created"], where)
            if v.get("suspended_seconds") is not None:
                stop = max(begin, cloud.now() - int(v["suspended_seconds"]))
            else:
                stop = _epoch(v["updated"], where) if v.get("updated") else begin
            periods = [[begin, stop]]
        for i, period in enumerate(periods or []):
            start = _epoch(period[0], where)
            end = _epoch(period[1], where) if len(period) > 1 and period[1] else None
            last = i == len(periods) - 1
            action = {"DONE": "terminate", "POWEROFF": "poweroff", "SUSPENDED": "suspend"}.get(state_name, "none") \
                if last else "poweroff"
            _history(vm, host, start, end, action)
        if state_name == "DONE":
            vm.etime = ended or (vm.history[-1].etime if vm.history else stime)
        monitoring = {}
        if v.get("network_in") is not None:
            monitoring["NETRX"] = str(v["network_in"])
        if v.get("network_out") is not None:
            monitoring["NETTX"] = str(v["network_out"])
        vm.monitoring = monitoring
        cloud.vms[vid] = vm
    return cloud
