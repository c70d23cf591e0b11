"""XML documents as oned 6.x writes them (element names and order from OpenNebula's XSDs)."""

from __future__ import annotations

from typing import Dict, Iterable, List
from xml.sax.saxutils import escape

from pyone import VM_STATE

from .model import (
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
)
from .templates import cdata, render, vectors

_PERM_NAMES = ("OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M", "OTHER_A")
#: VM quota fields of OpenNebula 6.x (limit, then usage)
VM_QUOTA_FIELDS = ("CPU", "MEMORY", "RUNNING_CPU", "RUNNING_MEMORY", "RUNNING_VMS", "SYSTEM_DISK_SIZE", "VMS")
_DONE = int(VM_STATE.DONE.value)
_ACTIVE = int(VM_STATE.ACTIVE.value)


def _e(value: object) -> str:
    return escape(str(value))


def permissions(perms: Permissions) -> str:
    return "<PERMISSIONS>" + "".join(f"<{n}>{v}</{n}>" for n, v in zip(_PERM_NAMES, perms)) + "</PERMISSIONS>"


def ids(tag: str, values: Iterable[int]) -> str:
    inner = "".join(f"<ID>{v}</ID>" for v in values)
    return f"<{tag}>{inner}</{tag}>" if inner else f"<{tag}/>"


# -- VMs ---------------------------------------------------------------------------------------
def history_full(h: SimHistory, oid: int, vm_xml: str = "") -> str:
    return ("<HISTORY>"
            f"<OID>{oid}</OID><SEQ>{h.seq}</SEQ><HOSTNAME>{_e(h.hostname)}</HOSTNAME><HID>{h.hid}</HID>"
            f"<CID>{h.cid}</CID><STIME>{h.stime}</STIME><ETIME>{h.etime}</ETIME>"
            f"<VM_MAD>{cdata(h.vm_mad)}</VM_MAD><TM_MAD>{cdata(h.tm_mad)}</TM_MAD><DS_ID>{h.ds_id}</DS_ID>"
            "<PLAN_ID>-1</PLAN_ID><ACTION_ID>-1</ACTION_ID>"
            f"<PSTIME>{h.pstime}</PSTIME><PETIME>{h.petime}</PETIME><RSTIME>{h.rstime}</RSTIME>"
            f"<RETIME>{h.retime}</RETIME><ESTIME>{h.estime}</ESTIME><EETIME>{h.eetime}</EETIME>"
            f"<ACTION>{h.action}</ACTION><UID>{h.uid}</UID><GID>{h.gid}</GID><REQUEST_ID>{h.req_id}</REQUEST_ID>"
            f"{vm_xml}</HISTORY>")


def history_short(h: SimHistory, oid: int) -> str:
    return ("<HISTORY>"
            f"<OID>{oid}</OID><SEQ>{h.seq}</SEQ><HOSTNAME>{_e(h.hostname)}</HOSTNAME><HID>{h.hid}</HID>"
            f"<CID>{h.cid}</CID><DS_ID>{h.ds_id}</DS_ID><VM_MAD>{_e(h.vm_mad)}</VM_MAD>"
            f"<TM_MAD>{_e(h.tm_mad)}</TM_MAD><ACTION>{h.action}</ACTION></HISTORY>")


def _monitoring(vm: SimVM) -> str:
    if not vm.monitoring:
        return "<MONITORING/>"
    return "<MONITORING>" + "".join(f"<{k}>{cdata(v)}</{k}>" for k, v in vm.monitoring.items()) + "</MONITORING>"


def _vm_head(vm: SimVM, extended: bool) -> List[str]:
    last_poll = vm.monitoring.get("TIMESTAMP", "0")
    parts = [f"<VM><ID>{vm.id}</ID><UID>{vm.uid}</UID><GID>{vm.gid}</GID><UNAME>{_e(vm.uname)}</UNAME>"
             f"<GNAME>{_e(vm.gname)}</GNAME><NAME>{_e(vm.name)}</NAME>"]
    if extended:
        parts.append(permissions(vm.permissions))
    parts.append(f"<LAST_POLL>{last_poll}</LAST_POLL><STATE>{vm.state}</STATE><LCM_STATE>{vm.lcm_state}</LCM_STATE>")
    if extended:
        parts.append(f"<PREV_STATE>{vm.prev_state}</PREV_STATE><PREV_LCM_STATE>{vm.prev_lcm_state}</PREV_LCM_STATE>")
    parts.append(f"<RESCHED>0</RESCHED><STIME>{vm.stime}</STIME><ETIME>{vm.etime}</ETIME>"
                 f"<DEPLOY_ID>{_e(vm.deploy_id)}</DEPLOY_ID>")
    return parts


def vm_extended(vm: SimVM, n_history: int) -> str:
    """The VM body: ``n_history`` 0 (none, as inside accounting records), 1 (last record: the
    pool's stored body, ``one.vmpool.infoextended``) or 2 (all records: ``one.vm.info``)."""
    parts = _vm_head(vm, True)
    parts.append(_monitoring(vm))
    parts.append("<SCHED_ACTIONS/>")
    parts.append(render("TEMPLATE", vm.template))
    parts.append(render("USER_TEMPLATE", vm.user_template))
    if vm.history and n_history > 0:
        records = vm.history if n_history == 2 else vm.history[-1:]
        parts.append("<HISTORY_RECORDS>" + "".join(history_full(h, vm.id) for h in records) + "</HISTORY_RECORDS>")
    else:
        parts.append("<HISTORY_RECORDS/>")
    parts.append("<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS/></BACKUPS></VM>")
    return "".join(parts)


def vm_short(vm: SimVM) -> str:
    """The reduced body of ``one.vmpool.info``."""
    parts = _vm_head(vm, False)
    t = vm.template
    parts.append(f"<TEMPLATE><CPU>{cdata(t.get('CPU', ''))}</CPU><MEMORY>{cdata(t.get('MEMORY', ''))}</MEMORY>"
                 f"<VCPU>{cdata(t.get('VCPU', ''))}</VCPU>")
    for disk in vectors(t, "DISK"):
        parts.append("<DISK>" + "".join(f"<{k}>{cdata(disk[k])}</{k}>" for k in
                     ("DISK_ID", "DATASTORE", "DATASTORE_ID", "IMAGE", "IMAGE_ID", "SIZE", "TYPE", "CLONE",
                      "CLONE_TARGET", "LN_TARGET", "DISK_SNAPSHOT_TOTAL_SIZE") if k in disk) + "</DISK>")
    for nic in vectors(t, "NIC"):
        parts.append("<NIC>" + "".join(f"<{k}>{_e(nic[k])}</{k}>" for k in
                     ("IP", "EXTERNAL_IP", "IP6", "IP6_ULA", "IP6_LINK", "IP6_GLOBAL", "NETWORK_MODE",
                      "NETWORK", "NETWORK_ID", "NIC_ID", "SECURITY_GROUPS") if k in nic) + "</NIC>")
    parts.append("</TEMPLATE>")
    mon = {k: vm.monitoring[k] for k in ("CPU", "MEMORY", "STATE") if k in vm.monitoring}
    parts.append("<MONITORING>" + "".join(f"<{k}>{_e(v)}</{k}>" for k, v in mon.items()) + "</MONITORING>"
                 if mon else "<MONITORING/>")
    parts.append(render("USER_TEMPLATE", {k: v for k, v in vm.user_template.items()
                                          if k in ("LABELS", "ERROR", "SCHED_MESSAGE")}))
    if vm.history:
        parts.append("<HISTORY_RECORDS>" + history_short(vm.history[-1], vm.id) + "</HISTORY_RECORDS>")
    else:
        parts.append("<HISTORY_RECORDS/>")
    parts.append("</VM>")
    return "".join(parts)


def cached_vm(vm: SimVM, kind: str) -> str:
    text = vm.cache.get(kind)
    if text is None:
        if kind == "short":
            text = vm_short(vm)
        elif kind == "pool":
            text = vm_extended(vm, 1)
        elif kind == "info":
            text = vm_extended(vm, 2)
        else:
            text = vm_extended(vm, 0)
        vm.cache[kind] = text
    return text


def vm_pool(vms: Iterable[SimVM], extended: bool) -> str:
    kind = "pool" if extended else "short"
    return "<VM_POOL>" + "".join(cached_vm(vm, kind) for vm in vms) + "</VM_POOL>"


def accounting(records: Iterable[tuple]) -> str:
    """``one.vmpool.accounting``: HISTORY records (with the VM body, no history) ordered by vid, seq."""
    return "<HISTORY_RECORDS>" + "".join(history_full(h, vm.id, cached_vm(vm, "bare")) for vm, h in records) + \
        "</HISTORY_RECORDS>"


# -- quotas ------------------------------------------------------------------------------------
def vm_quota(limits: Dict[str, str], usage: Dict[str, str]) -> str:
    if not limits:
        return "<VM_QUOTA/>"
    inner = "".join(f"<{f}>{cdata(limits.get(f, '-1'))}</{f}><{f}_USED>{cdata(usage.get(f, '0'))}</{f}_USED>"
                    for f in VM_QUOTA_FIELDS)
    return f"<VM_QUOTA><VM>{inner}</VM></VM_QUOTA>"


def quotas_body(limits: Dict[str, str], usage: Dict[str, str]) -> str:
    return "<DATASTORE_QUOTA/><NETWORK_QUOTA/>" + vm_quota(limits, usage) + "<IMAGE_QUOTA/>"


def default_quotas(tag: str, limits: Dict[str, str]) -> str:
    base = {f: "-2" for f in VM_QUOTA_FIELDS}  # unlimited unless configured
    base.update(limits)
    return f"<{tag}>" + quotas_body(base, {}) + f"</{tag}>"


def _float(value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def vm_usage(cloud: SimCloud, key: str, owner_id: int) -> Dict[str, str]:
    cpu = mem = vms = 0.0
    for vm in cloud.vms.values():
        if vm.state == _DONE or getattr(vm, key) != owner_id:
            continue
        vms += 1
        cpu += _float(vm.template.get("CPU"))
        mem += _float(vm.template.get("MEMORY"))
    return {"CPU": f"{cpu:g}", "MEMORY": f"{mem:g}", "VMS": f"{vms:g}", "RUNNING_CPU": f"{cpu:g}",
            "RUNNING_MEMORY": f"{mem:g}", "RUNNING_VMS": f"{vms:g}", "SYSTEM_DISK_SIZE": "0"}


# -- users and groups --------------------------------------------------------------------------
def user_core(cloud: SimCloud, user: SimUser) -> str:
    group = cloud.groups.get(user.gid)
    return (f"<ID>{user.id}</ID><GID>{user.gid}</GID>" + ids("GROUPS", user.groups) +
            f"<GNAME>{_e(group.name if group else '')}</GNAME><NAME>{_e(user.name)}</NAME>"
            f"<PASSWORD>{_e(user.password)}</PASSWORD><AUTH_DRIVER>{_e(user.auth_driver)}</AUTH_DRIVER>"
            f"<ENABLED>{1 if user.enabled else 0}</ENABLED><LOGIN_TOKEN/>" + render("TEMPLATE", user.template))


def user(cloud: SimCloud, u: SimUser) -> str:
    return ("<USER>" + user_core(cloud, u) + quotas_body(u.quota, vm_usage(cloud, "uid", u.id)) +
            default_quotas("DEFAULT_USER_QUOTAS", cloud.default_user_quota) + "</USER>")


def user_pool(cloud: SimCloud) -> str:
    users = [cloud.users[i] for i in sorted(cloud.users)]
    body = "".join("<USER>" + user_core(cloud, u) + "</USER>" for u in users)
    quotas = "".join(f"<QUOTAS><ID>{u.id}</ID>" + quotas_body(u.quota, vm_usage(cloud, "uid", u.id)) + "</QUOTAS>"
                     for u in users)
    return "<USER_POOL>" + body + quotas + default_quotas("DEFAULT_USER_QUOTAS", cloud.default_user_quota) + \
        "</USER_POOL>"


def _group_users(cloud: SimCloud, group: SimGroup) -> List[int]:
    return sorted(u.id for u in cloud.users.values() if group.id in u.groups)


def group_core(cloud: SimCloud, g: SimGroup) -> str:
    return (f"<ID>{g.id}</ID><NAME>{_e(g.name)}</NAME>" + render("TEMPLATE", g.template) +
            ids("USERS", _group_users(cloud, g)) + ids("ADMINS", g.admins))


def group(cloud: SimCloud, g: SimGroup) -> str:
    return ("<GROUP>" + group_core(cloud, g) + quotas_body(g.quota, vm_usage(cloud, "gid", g.id)) +
            default_quotas("DEFAULT_GROUP_QUOTAS", cloud.default_group_quota) + "</GROUP>")


def group_pool(cloud: SimCloud) -> str:
    groups = [cloud.groups[i] for i in sorted(cloud.groups)]
    body = "".join("<GROUP>" + group_core(cloud, g) + "</GROUP>" for g in groups)
    quotas = "".join(f"<QUOTAS><ID>{g.id}</ID>" + quotas_body(g.quota, vm_usage(cloud, "gid", g.id)) + "</QUOTAS>"
                     for g in groups)
    return "<GROUP_POOL>" + body + quotas + default_quotas("DEFAULT_GROUP_QUOTAS", cloud.default_group_quota) + \
        "</GROUP_POOL>"


# -- images, templates, datastores ---------------------------------------------------------------
def _names(cloud: SimCloud, uid: int, gid: int) -> str:
    u = cloud.users.get(uid)
    g = cloud.groups.get(gid)
    return f"<UNAME>{_e(u.name if u else '')}</UNAME><GNAME>{_e(g.name if g else '')}</GNAME>"


def image(cloud: SimCloud, i: SimImage) -> str:
    ds = cloud.datastores.get(i.datastore_id)
    return (f"<IMAGE><ID>{i.id}</ID><UID>{i.uid}</UID><GID>{i.gid}</GID>" + _names(cloud, i.uid, i.gid) +
            f"<NAME>{_e(i.name)}</NAME>" + permissions(i.permissions) +
            f"<TYPE>{i.type}</TYPE><DISK_TYPE>0</DISK_TYPE><PERSISTENT>{i.persistent}</PERSISTENT>"
            f"<REGTIME>{i.regtime}</REGTIME><MODTIME>{i.modtime or i.regtime}</MODTIME>"
            f"<SOURCE>{cdata(i.source)}</SOURCE><PATH>{cdata(i.path)}</PATH><FORMAT>{cdata(i.format)}</FORMAT>"
            f"<FS>{cdata('')}</FS><SIZE>{i.size_mb}</SIZE><STATE>{i.state}</STATE><PREV_STATE>{i.state}</PREV_STATE>"
            f"<RUNNING_VMS>{i.running_vms}</RUNNING_VMS><CLONING_OPS>0</CLONING_OPS><CLONING_ID>-1</CLONING_ID>"
            f"<TARGET_SNAPSHOT>-1</TARGET_SNAPSHOT><DATASTORE_ID>{i.datastore_id}</DATASTORE_ID>"
            f"<DATASTORE>{_e(ds.name if ds else '')}</DATASTORE>" + ids("VMS", i.vms) + ids("CLONES", []) +
            ids("APP_CLONES", []) + render("TEMPLATE", i.template) +
            "<SNAPSHOTS><ALLOW_ORPHANS><![CDATA[NO]]></ALLOW_ORPHANS><CURRENT_BASE><![CDATA[-1]]></CURRENT_BASE>"
            "<NEXT_SNAPSHOT><![CDATA[0]]></NEXT_SNAPSHOT></SNAPSHOTS></IMAGE>")


def image_pool(cloud: SimCloud, images: Iterable[SimImage]) -> str:
    return "<IMAGE_POOL>" + "".join(image(cloud, i) for i in images) + "</IMAGE_POOL>"


def vmtemplate(cloud: SimCloud, t: SimTemplate) -> str:
    return (f"<VMTEMPLATE><ID>{t.id}</ID><UID>{t.uid}</UID><GID>{t.gid}</GID>" + _names(cloud, t.uid, t.gid) +
            f"<NAME>{_e(t.name)}</NAME>" + permissions(t.permissions) + f"<REGTIME>{t.regtime}</REGTIME>" +
            render("TEMPLATE", t.template) + "</VMTEMPLATE>")


def vmtemplate_pool(cloud: SimCloud, templates: Iterable[SimTemplate]) -> str:
    return "<VMTEMPLATE_POOL>" + "".join(vmtemplate(cloud, t) for t in templates) + "</VMTEMPLATE_POOL>"


def datastore(cloud: SimCloud, d: SimDatastore) -> str:
    images = sorted(i.id for i in cloud.images.values() if i.datastore_id == d.id)
    return (f"<DATASTORE><ID>{d.id}</ID><UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>"
            f"<NAME>{_e(d.name)}</NAME>" + permissions((1, 1, 0, 1, 0, 0, 0, 0, 0)) +
            f"<DS_MAD>{cdata(d.ds_mad)}</DS_MAD><TM_MAD>{cdata(d.tm_mad)}</TM_MAD>"
            f"<BASE_PATH>{cdata(d.base_path)}</BASE_PATH><TYPE>{d.type}</TYPE><DISK_TYPE>0</DISK_TYPE>"
            f"<STATE>0</STATE>" + ids("CLUSTERS", d.cluster_ids) +
            f"<TOTAL_MB>{d.total_mb}</TOTAL_MB><FREE_MB>{d.free_mb}</FREE_MB>"
            f"<USED_MB>{d.total_mb - d.free_mb}</USED_MB>" + ids("IMAGES", images) +
            render("TEMPLATE", d.template) + "</DATASTORE>")


def datastore_pool(cloud: SimCloud) -> str:
    return "<DATASTORE_POOL>" + "".join(datastore(cloud, cloud.datastores[i]) for i in sorted(cloud.datastores)) + \
        "</DATASTORE_POOL>"


# -- hosts and clusters --------------------------------------------------------------------------
def host(cloud: SimCloud, h: SimHost) -> str:
    running = [vm for vm in cloud.vms.values() if vm.state == _ACTIVE and vm.history and vm.history[-1].hid == h.id
               and not vm.history[-1].etime]
    cpu_usage = sum(int(_float(vm.template.get("CPU")) * 100) for vm in running)
    mem_usage = sum(int(_float(vm.template.get("MEMORY")) * 1024) for vm in running)
    cluster = cloud.clusters.get(h.cluster_id)
    return (f"<HOST><ID>{h.id}</ID><NAME>{_e(h.name)}</NAME><STATE>{h.state}</STATE><PREV_STATE>{h.state}</PREV_STATE>"
            f"<IM_MAD>{cdata(h.im_mad)}</IM_MAD><VM_MAD>{cdata(h.vm_mad)}</VM_MAD>"
            f"<CLUSTER_ID>{h.cluster_id}</CLUSTER_ID><CLUSTER>{_e(cluster.name if cluster else '')}</CLUSTER>"
            f"<HOST_SHARE><MEM_USAGE>{mem_usage}</MEM_USAGE><CPU_USAGE>{cpu_usage}</CPU_USAGE>"
            f"<TOTAL_MEM>{h.total_mem_kb}</TOTAL_MEM><TOTAL_CPU>{h.total_cpu}</TOTAL_CPU>"
            f"<MAX_MEM>{h.total_mem_kb}</MAX_MEM><MAX_CPU>{h.total_cpu}</MAX_CPU>"
            f"<RUNNING_VMS>{len(running)}</RUNNING_VMS><VMS_THREAD>1</VMS_THREAD>"
            "<DATASTORES><DISK_USAGE>0</DISK_USAGE><FREE_DISK>0</FREE_DISK><MAX_DISK>0</MAX_DISK>"
            "<USED_DISK>0</USED_DISK></DATASTORES><PCI_DEVICES/><NUMA_NODES/></HOST_SHARE>" +
            ids("VMS", sorted(vm.id for vm in running)) + render("TEMPLATE", h.template) +
            f"<MONITORING><TIMESTAMP>{cloud.now()}</TIMESTAMP><ID>{h.id}</ID></MONITORING></HOST>")


def host_pool(cloud: SimCloud) -> str:
    return "<HOST_POOL>" + "".join(host(cloud, cloud.hosts[i]) for i in sorted(cloud.hosts)) + "</HOST_POOL>"


def cluster(cloud: SimCloud, c: SimCluster) -> str:
    hosts = sorted(h.id for h in cloud.hosts.values() if h.cluster_id == c.id)
    dss = sorted(d.id for d in cloud.datastores.values() if c.id in d.cluster_ids)
    return (f"<CLUSTER><ID>{c.id}</ID><NAME>{_e(c.name)}</NAME>" + ids("HOSTS", hosts) + ids("DATASTORES", dss) +
            ids("VNETS", []) + render("TEMPLATE", c.template) + "</CLUSTER>")


def cluster_pool(cloud: SimCloud) -> str:
    return "<CLUSTER_POOL>" + "".join(cluster(cloud, cloud.clusters[i]) for i in sorted(cloud.clusters)) + \
        "</CLUSTER_POOL>"


def system_config(cloud: SimCloud, list_order: str = "ASC") -> str:
    return (f"<OPENNEBULA_CONFIGURATION><API_LIST_ORDER><![CDATA[{list_order}]]></API_LIST_ORDER>"
            "<DEFAULT_AUTH><![CDATA[default]]></DEFAULT_AUTH><MANAGER_TIMER><![CDATA[15]]></MANAGER_TIMER>"
            "</OPENNEBULA_CONFIGURATION>")
