"""The ``opennebula`` backend: an OpenNebula 6.x cloud through pyone (XML-RPC).

Mapping of OpenNebula objects to the records of :mod:`fedcloud_site.cloud.base`:

* groups are projects; the group template attribute ``cloud.opennebula.vo_attribute``
  (if set) becomes the project property ``cloud.vo_property``;
* VM templates are flavours: VCPU (else CPU), MEMORY, the sum of DISK/SIZE; GPUs from
  ``PCI`` devices of display class (03xx) or the ``ACCELERATOR_TYPE/VENDOR/MODEL/NUMBER``
  attributes, benchmarks from ``BENCHMARK_TYPE/VALUE`` (the extra-spec conventions of
  :mod:`fedcloud_site.cloud.flavor_specs` with OpenNebula attribute names).  Who may use a
  template comes from its PERMISSIONS in the template pool (no further calls): OTHER_U
  makes it public (``projects`` None), GROUP_U alone private to its group (``projects`` =
  (GID,)), neither private to its owner (``projects`` = (), no project's share);
  ACL rules granting templates to other groups are not read;
* VMs are paged from ``one.vmpool.infoextended`` (offset ``start_id`` and negative
  ``end_id`` = page size), never one call per VM.  Paging is checked for continuity:
  each page must overlap the previous one, so VMs that finish while the pool is being
  read cannot shift an unread VM out of sight.  State comes from :mod:`.states`
  (STATE, LCM_STATE) -> :class:`VMState`, covering every state including UNDEPLOYED,
  POWEROFF, CLONING (which oneacct-export drops).  Run periods are the HISTORY
  records' RSTIME..RETIME.  The pool body carries only a VM's last record; when a VM
  has earlier ones they come from one ``one.vmpool.accounting`` call for the listing
  window and, for records that ended before the window (``complete_history``), one
  more accounting call from the earliest such VM's creation to the window's start
  (those VMs are yielded last).  A listing without ``active_since`` makes no history
  calls: VMs with earlier records then have ``run_periods=None`` (unknown).  Network
  bytes come from MONITORING (NETRX in, NETTX out),
  the image id is the inherited ``VMCATCHER_EVENT_AD_MPURI`` of the first disk (else
  its IMAGE_ID), the user name is ``USER_TEMPLATE/USER_X509_DN`` or the owner's X.509
  DN, and the benchmark comes from the VM's host, else its cluster, else the flavour;
* images are registered from a file staged in ``upload_dir`` (oned copies it into the
  spec's datastore, else ``datastore_id``); properties are image template attributes
  (names upper-cased, other characters than ``A-Z0-9_`` replaced by ``_``).  Names are
  made valid for oned (no ``&|:\\";/'#{}$<>``, at most 128 characters) and, as oned wants
  them unique per owner, carry the caller's distinguishing tag (:meth:`image_name`);
* VM templates made by :meth:`create_template` boot one image: NAME, CPU, VCPU, MEMORY,
  ``OS=[ARCH]``, ``DISK=[IMAGE_ID]``, the properties as attributes, owned by the image's
  group with the same USE permissions;
* users carry EMAIL, DISPLAY_NAME, X509_DN (``|``-separated), SSH_PUBLIC_KEY and the
  marker ``FEDCLOUD_SITE_MANAGED="yes"`` in their template; X.509 users use the
  ``x509`` auth driver with their DNs as password.

pyone errors map to :class:`CloudAuthError` (authentication/authorization),
:class:`NotFound`, :class:`CloudUnavailable` (connection errors, HTTP 5xx, internal
errors, garbled answers) and :class:`CloudError`; records that cannot be read raise
:class:`BadCloudData` naming the object.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import time
import uuid
import xml.parsers.expat
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import pyone
import requests
from lxml import etree

from ...schema import Duration, Secret
from ...timeutil import parse_time, to_epoch
from ..base import (
    VM,
    BackendDeclaration,
    BadCloudData,
    Capability,
    Capacity,
    CloudAuthError,
    CloudBackend,
    CloudError,
    CloudUnavailable,
    Flavor,
    Group,
    Image,
    ImageSpec,
    IPAddress,
    MiddlewareFacts,
    NotFound,
    NotSupported,
    Project,
    Quota,
    RunPeriod,
    TemplateSpec,
    User,
    UserSpec,
    VMState,
    VMTemplate,
)
from ..flavor_specs import decode_flavor_specs
from .records import (
    Histories,
    PoolVM,
    Record,
    as_number,
    attribute_name,
    checked_dns,
    child_text,
    epoch_time,
    first_run_of,
    history_record,
    is_complete,
    is_public,
    pci_accelerator,
    quota_holds,
    run_periods_of,
    scalars,
    template_specs,
    template_xml,
    user_dns,
    user_quota,
    vectors,
    vm_quota,
    window_outdated,
    x509_password,
)
from .states import vm_state
from .transport import ONE_ERRORS, Transport, xml_parser


# -- settings -------------------------------------------------------------------------------------------
@dataclass
class OpenNebulaSettings:
    """``cloud.opennebula``: how to reach oned and how to map its objects."""

    endpoint: str = "http://localhost:2633/RPC2"
    username: Optional[str] = None
    password: Optional[Secret] = None  # or password_file
    one_auth: Optional[Path] = None  # a ONE_AUTH file holding ``user:password``
    timeout: Duration = Duration(60)
    verify_tls: bool = True
    ca_file: Optional[Path] = None
    page_size: int = 1000  # VMs per one.vmpool.infoextended call
    datastore_id: int = 1  # image datastore new images are registered in
    upload_dir: Optional[Path] = None  # where image bytes are staged for oned to read (shared with the frontend)
    image_types: List[str] = field(default_factory=lambda: ["OS"])  # image TYPEs listed as images
    image_ready_timeout: Duration = Duration(3600)  # how long a new image may stay LOCKED while oned copies it
    poll_interval: Duration = Duration(2)
    vo_attribute: Optional[str] = None  # group template attribute naming the VO of the group
    benchmark_type_attribute: str = "BENCHMARK_TYPE"  # host/cluster/template attributes of the benchmark
    benchmark_value_attribute: str = "BENCHMARK_VALUE"
    user_auth_driver: str = "x509"  # auth driver of managed users that have X.509 DNs (others: core)
    complete_history: bool = True  # also fetch history records that ended before the listing window
    cache_seconds: Duration = Duration(60)  # reuse users/hosts/clusters/templates read this recently

    def validate(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint: expected an http:// or https:// URL of oned's XML-RPC API, "
                             f"got {self.endpoint!r}")
        if self.one_auth is not None and (self.username is not None or self.password is not None):
            raise ValueError("one_auth: give either one_auth or username and password, not both")
        if self.one_auth is None and (self.username is None or self.password is None):
            missing = "username" if self.username is None else "password"
            raise ValueError(f"{missing}: required (give username and password or password_file, or one_auth)")
        if self.username is not None and ":" in self.username:
            raise ValueError("username: must not contain ':'")
        if self.page_size < 2:
            raise ValueError(f"page_size: must be at least 2, got {self.page_size}")
        if self.datastore_id < 0:
            raise ValueError(f"datastore_id: must be a datastore id (>= 0), got {self.datastore_id}")
        if self.timeout <= 0:
            raise ValueError("timeout: must be positive")


class _StillCopying(CloudUnavailable):
    """A registered image is still LOCKED (oned copying it) when we stop waiting."""


#: characters oned refuses in object names (PoolObjectSQL::INVALID_NAME_CHARS), and its length limit
_INVALID_NAME_CHARS = re.compile(r"[&|:\\\";/'#{}$<>\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 128
#: user template attributes this backend writes itself
USER_MANAGED_ATTRIBUTES = ("EMAIL", "DISPLAY_NAME", "X509_DN", "SSH_PUBLIC_KEY", "FEDCLOUD_SITE_MANAGED",
                           "FEDCLOUD_SITE_PROPERTIES")
MANAGED_MARKER = "FEDCLOUD_SITE_MANAGED"
#: image template attribute of an in-use image we hid instead of disabling ("GROUP_U,OTHER_U" it had)
DEACTIVATED_MARKER = "FEDCLOUD_SITE_DEACTIVATED"
#: user template attributes shown as User fields rather than properties
_USER_FIELDS = ("EMAIL", "DISPLAY_NAME", "X509_DN", "SSH_PUBLIC_KEY", "FEDCLOUD_SITE_PROPERTIES")
_IMAGE_STATUS = {"INIT": "queued", "READY": "active", "USED": "active", "DISABLED": "deactivated",
                 "LOCKED": "saving", "ERROR": "error", "CLONE": "active", "DELETE": "pending_delete",
                 "USED_PERS": "active", "LOCKED_USED": "saving", "LOCKED_USED_PERS": "saving"}


def _visibility(perms: Any) -> str:
    """An image's or template's visibility from its ``PERMISSIONS``: used by others, by the group, or private."""
    if perms is not None and perms.OTHER_U:
        return "public"
    if perms is not None and perms.GROUP_U:
        return "shared"
    return "private"


def _flavor_projects(visibility: str, gid: Any, where: str) -> Optional[Tuple[str, ...]]:
    """The projects that may use a template of that visibility: every one (None), its group, or none."""
    if visibility == "public":
        return None
    if visibility == "private":
        return ()
    if gid is None or str(gid).strip() == "":
        raise BadCloudData(f"{where}: usable by its group (GROUP_U) but it has no GID")
    return (str(gid),)


@dataclass
class _Lookups:
    """Pools read once per listing (and reused for ``cache_seconds``): users, hosts, clusters, templates."""

    users: Dict[int, Any] = field(default_factory=dict)
    hosts: Dict[int, Any] = field(default_factory=dict)
    clusters: Dict[int, Any] = field(default_factory=dict)
    flavors: Dict[str, Flavor] = field(default_factory=dict)


class OpenNebulaBackend(CloudBackend):
    """OpenNebula through pyone; see the module documentation for the mapping."""

    name = "opennebula"
    Settings = OpenNebulaSettings
    declaration = BackendDeclaration(
        label="OpenNebula",
        middleware=MiddlewareFacts(
            api_type="OpenNebula", api_version="xmlrpc", interface_name="org.opennebula.compute",
            implementor="OpenNebula Systems", implementation_name="OpenNebula",
            semantics="https://docs.opennebula.io/stable/integration_and_development/system_interfaces/api.html",
            product_name="OpenNebula"),
        capabilities=frozenset({Capability.USAGE, Capability.IMAGE_WRITE, Capability.TEMPLATES,
                                Capability.DATASTORES, Capability.USERS}),
        protected_users=frozenset({"oneadmin", "serveradmin"}))
    filters_vms_by_project = False  # oned cannot filter the VM pool by group: every listing pages the pool

    def __init__(self, settings: OpenNebulaSettings, config: Any = None) -> None:
        self.settings = settings
        self.config = config
        self._server: Any = None
        self._transport: Optional[Transport] = None
        self._calls: Counter[str] = Counter()
        self._lookup_cache: Optional[Tuple[float, _Lookups]] = None
        self._windows: Dict[int, Tuple[float, Histories]] = {}

    # -- connection ---------------------------------------------------------------------------------
    def _session(self) -> str:
        s = self.settings
        if s.one_auth is not None:
            try:
                text = s.one_auth.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise CloudAuthError(f"cloud.opennebula.one_auth: cannot read {s.one_auth}: {exc.strerror}") \
                    from exc
            if ":" not in text:
                raise CloudAuthError(f"cloud.opennebula.one_auth: {s.one_auth} does not hold user:password")
            return text.splitlines()[0]
        return f"{s.username}:{s.password}"

    def _one(self) -> Any:
        if self._server is None:
            s = self.settings
            verify: Any = str(s.ca_file) if s.ca_file is not None else s.verify_tls
            server = pyone.OneServer(s.endpoint, session=self._session())
            transport = Transport(float(s.timeout), verify, s.endpoint.startswith("https"))
            server._ServerProxy__transport = transport  # pyone offers no other way to pass a transport
            self._server, self._transport = server, transport
        return self._server

    def close(self) -> None:
        self._lookup_cache = None
        self._windows.clear()
        if self._transport is not None:
            self._transport.close()
        self._server = self._transport = None

    def request_count(self) -> Mapping[str, Any]:
        """XML-RPC calls made, per method (``one.vmpool.infoextended``...) and in ``total``."""
        counts: Dict[str, Any] = dict(self._calls)
        counts["total"] = sum(self._calls.values())
        return counts

    def _call(self, method: str, *params: Any, target: Any = None) -> Any:
        """One XML-RPC call through pyone, errors mapped to CloudError subclasses."""
        self._calls[method] += 1
        if target is None:
            target = self._one()
            for part in method.split(".")[1:]:
                target = getattr(target, part)
        where = f"OpenNebula {self.settings.endpoint} {method}"
        try:
            return target(*params)
        except pyone.OneAuthenticationException as exc:
            raise CloudAuthError(f"{where}: {exc}") from exc
        except pyone.OneAuthorizationException as exc:
            raise CloudAuthError(f"{where}: {exc}") from exc
        except pyone.OneNoExistsException as exc:
            raise NotFound(f"{where}: {exc}") from exc
        except pyone.OneInternalException as exc:
            raise CloudUnavailable(f"{where}: {exc}") from exc
        except pyone.OneException as exc:
            raise CloudError(f"{where}: {exc}") from exc
        except xmlrpc.client.ProtocolError as exc:
            cls = CloudUnavailable if exc.errcode >= 500 or exc.errcode in (408, 429) else CloudError
            raise cls(f"{where}: HTTP {exc.errcode} {exc.errmsg}") from exc
        except requests.Timeout as cause:
            raise CloudUnavailable(f"{where}: no answer within {self.settings.timeout:g}s") from cause
        except requests.RequestException as exc:
            raise CloudUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
        except (xml.parsers.expat.ExpatError, xmlrpc.client.ResponseError) as exc:
            raise CloudUnavailable(f"{where}: garbled XML-RPC answer: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - the bindings raise bare errors on unparsable documents
            if type(exc).__name__ in ("GDSParseError", "XMLSyntaxError") or isinstance(exc, ValueError):
                raise BadCloudData(f"{where}: unreadable answer: {exc}") from exc
            raise

    # -- projects, flavours, capacity ---------------------------------------------------------------
    def list_projects(self) -> Iterator[Project]:
        pool = self._call("one.grouppool.info")
        vo_property = getattr(getattr(self.config, "cloud", None), "vo_property", "egi.VO")
        for group in pool.GROUP:
            props = scalars(group.TEMPLATE)
            attr = self.settings.vo_attribute
            if attr and props.get(attr.upper()):
                props[vo_property] = props[attr.upper()]
            if group.ID is None or not group.NAME:
                self.bad_record(BadCloudData(f"OpenNebula group {group.ID}: no ID or NAME"))
                continue
            yield Project(id=str(group.ID), name=str(group.NAME), description=props.get("DESCRIPTION", ""),
                          properties=props)

    def _flavor(self, tmpl: Any) -> Flavor:
        where = f"OpenNebula template {tmpl.ID}"
        t = tmpl.TEMPLATE or {}
        specs = template_specs(t)
        try:
            accelerator, bench_type, bench_value = decode_flavor_specs(specs)
        except ValueError as exc:
            raise BadCloudData(f"{where}: {exc}") from exc
        disk_mb = sum(as_number(d.get("SIZE"), "DISK/SIZE", where, 0) for d in vectors(t, "DISK"))
        vcpus = as_number(t.get("VCPU") or t.get("CPU"), "VCPU", where, 1)
        visibility = _visibility(tmpl.PERMISSIONS)
        return Flavor(id=str(tmpl.ID), name=str(tmpl.NAME), vcpus=vcpus,
                      ram_mb=int(as_number(t.get("MEMORY"), "MEMORY", where, 0)),
                      disk_gb=int(math.ceil(disk_mb / 1024)), public=visibility == "public",
                      extra_specs=specs, accelerator=accelerator or pci_accelerator(t),
                      benchmark_type=bench_type, benchmark_value=bench_value,
                      projects=_flavor_projects(visibility, tmpl.GID, where))

    def list_flavors(self) -> Iterator[Flavor]:
        pool = self._call("one.templatepool.info", -2, -1, -1)
        for tmpl in pool.VMTEMPLATE:
            flavor = self._checked(self._flavor, tmpl)
            if flavor is not None:
                yield flavor

    def capacity(self) -> Capacity:
        pool = self._call("one.hostpool.info")
        hosts = [h for h in pool.HOST if h.STATE not in (4, 8)]  # DISABLED, OFFLINE
        if not hosts:
            return Capacity(total_vcpus=0, used_vcpus=0, total_ram_mb=0, used_ram_mb=0, running_vms=0)
        share = [h.HOST_SHARE for h in hosts]
        template = hosts[0].TEMPLATE or {}
        hypervisor = str(template.get("HYPERVISOR") or hosts[0].VM_MAD or "").upper() or None
        return Capacity(total_vcpus=int(sum(int(s.TOTAL_CPU or 0) for s in share) // 100),
                        used_vcpus=int(sum(int(s.CPU_USAGE or 0) for s in share) // 100),
                        total_ram_mb=int(sum(int(s.TOTAL_MEM or 0) for s in share) // 1024),
                        used_ram_mb=int(sum(int(s.MEM_USAGE or 0) for s in share) // 1024),
                        running_vms=sum(int(s.RUNNING_VMS or 0) for s in share), hypervisor=hypervisor,
                        hypervisor_version=template.get("HYPERVISOR_VERSION") or template.get("VERSION"))

    def quota(self, project_id: str) -> Quota:
        group = self._call("one.group.info", self._int_id(project_id, "group"))
        node = group.gds_elementtree_node_
        return vm_quota(node, node.find("DEFAULT_GROUP_QUOTAS") if node is not None else None)

    @staticmethod
    def _int_id(value: str, kind: str) -> int:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise NotFound(f"OpenNebula {kind} ids are numbers, got {value!r}") from exc

    # -- VMs --------------------------------------------------------------------------------------------
    def _vm_pages(self, state: int) -> Iterator[Any]:
        """Every VM of the pool in id order, paged by offset with an overlap check (see module docs)."""
        size = self.settings.page_size
        offset, last_id, backoffs = 0, -1, 0
        while True:
            page = self._vm_page(offset, size, state)
            if len(page) > 1 and page[0].ID > page[-1].ID:
                raise CloudError("OpenNebula lists the VM pool in descending order (API_LIST_ORDER=DESC); "
                                 "paging needs ascending order")
            if offset > 0 and (not page or page[0].ID > last_id):
                # VMs before the offset left the pool (e.g. became DONE): the window moved; step back
                backoffs += 1
                if backoffs > 1000:
                    raise CloudUnavailable("OpenNebula VM pool kept changing while it was being read")
                offset = max(0, offset - size)
                continue
            for vm in page:
                if vm.ID > last_id:
                    last_id = vm.ID
                    yield vm
            if len(page) < size:
                return
            offset += len(page) - 1  # the next page starts with the last VM of this one

    def _vm_page(self, offset: int, size: int, state: int) -> List[PoolVM]:
        """One page of the extended VM pool, read from the XML with lxml (pyone's generated
        bindings take ~0.5 ms per VM and drop the history times of pool bodies anyway)."""
        text = self._raw_call("one.vmpool.infoextended", -2, offset, -size, state)
        try:
            root = etree.fromstring(text.encode("utf-8"), xml_parser())
        except etree.XMLSyntaxError as exc:
            raise BadCloudData(f"OpenNebula {self.settings.endpoint} one.vmpool.infoextended: "
                               f"unreadable VM pool: {exc}") from exc
        page = []
        for node in root.iterfind("VM"):
            vm = self._checked(PoolVM, node)
            if vm is not None:
                page.append(vm)
        return page

    def _lookups(self) -> _Lookups:
        """Users, hosts, clusters and templates: read once, then reused for ``cache_seconds`` (a run
        listing project after project reads them once)."""
        cached = self._lookup_cache
        if cached is not None and time.monotonic() - cached[0] < float(self.settings.cache_seconds):
            return cached[1]
        lookups = _Lookups()
        lookups.users = {u.ID: u for u in self._call("one.userpool.info").USER}
        lookups.hosts = {h.ID: h for h in self._call("one.hostpool.info").HOST}
        lookups.clusters = {c.ID: c for c in self._call("one.clusterpool.info").CLUSTER}
        lookups.flavors = {f.id: f for f in self.list_flavors()}
        self._lookup_cache = (time.monotonic(), lookups)
        return lookups

    def _accounting(self, time_start: int, time_end: int, wanted: Optional[Set[int]] = None) -> Histories:
        """History records (vid -> seq -> Record) from one ``one.vmpool.accounting`` call.

        The answer holds every record in the window with a copy of its VM; it is parsed as a
        stream keeping only the times, not through pyone's object bindings (much faster, and
        memory stays small for large windows)."""
        text = self._raw_call("one.vmpool.accounting", -2, time_start, time_end)
        history: Histories = {}
        where = f"OpenNebula {self.settings.endpoint} one.vmpool.accounting"
        try:
            for _, node in etree.iterparse(io.BytesIO(text.encode("utf-8")), tag="HISTORY"):
                parent = node.getparent()
                if parent is not None and parent.tag == "HISTORY_RECORDS" and parent.getparent() is None:
                    vid = int(node.findtext("OID"))
                    if wanted is None or vid in wanted:
                        history.setdefault(vid, {})[int(node.findtext("SEQ"))] = history_record(node)
                    node.clear()
        except (etree.XMLSyntaxError, TypeError, ValueError) as exc:
            raise BadCloudData(f"{where}: unreadable history record: {exc}") from exc
        return history

    def _raw_call(self, method: str, *params: Any) -> str:
        """A call whose XML answer we parse ourselves; errors as in :meth:`_call`."""
        server = self._one()

        def request(*args: Any) -> Any:
            answer = server._do_request(method, server._cast_parms(args))
            if not answer[0]:
                raise ONE_ERRORS.get(answer[2], pyone.OneException)(answer[1])
            return answer[1]

        return str(self._call(method, *params, target=request))

    def _window(self, since: int, refresh: bool = False) -> Tuple[float, Histories]:
        """(when read, records overlapping [since, now]); reused for ``cache_seconds`` by the listings
        of one run, which share their window start."""
        cached = self._windows.get(since)
        if cached is not None and not refresh and time.monotonic() - cached[0] < float(self.settings.cache_seconds):
            return cached
        entry = (time.monotonic(), self._accounting(since, -1))
        self._windows[since] = entry
        while len(self._windows) > 4:
            self._windows.pop(next(iter(self._windows)))
        return entry

    def _complete(self, vms: List[Tuple[VM, Dict[int, Record]]], since: int) -> Iterator[VM]:
        """VMs whose history started before the window, with the records that ended before it:
        one accounting call from the earliest of their creations to the window's start."""
        wanted = {int(vm.id) for vm, _ in vms}
        earliest = min(to_epoch(vm.created_at) for vm, _ in vms)
        history = self._accounting(max(earliest - 1, 0), since, wanted)
        for vm, records in vms:
            merged = dict(history.get(int(vm.id), {}))
            merged.update(records)
            yield replace(vm, run_periods=run_periods_of(merged), **first_run_of(merged))

    def _user_dn(self, raw: PoolVM, lookups: _Lookups) -> Optional[str]:
        dn = raw.USER_TEMPLATE.get("USER_X509_DN")
        if isinstance(dn, str) and dn:
            return dn
        user = lookups.users.get(raw.UID)
        if user is None:
            return None
        dns = user_dns(user)
        return dns[0] if dns else None

    def _benchmark(self, host_id: Optional[int], lookups: _Lookups, flavor: Optional[Flavor]) \
            -> Tuple[Optional[str], Optional[float]]:
        type_attr = self.settings.benchmark_type_attribute.upper()
        value_attr = self.settings.benchmark_value_attribute.upper()
        sources: List[Any] = []
        host = lookups.hosts.get(host_id) if host_id is not None else None
        if host is not None:
            sources.append((f"host {host.NAME}", host.TEMPLATE))
            cluster = lookups.clusters.get(host.CLUSTER_ID)
            if cluster is not None:
                sources.append((f"cluster {cluster.NAME}", cluster.TEMPLATE))
        for where, template in sources:
            t = template or {}
            kind, value = t.get(type_attr), t.get(value_attr)
            if isinstance(kind, str) and kind and isinstance(value, str) and value:
                try:
                    return kind, float(value)
                except ValueError as exc:
                    raise BadCloudData(f"OpenNebula {where}: {value_attr} {value!r} is not a number") from exc
        if flavor is not None:
            return flavor.benchmark_type, flavor.benchmark_value
        return None, None

    def _vm(self, raw: PoolVM, lookups: _Lookups, periods: Optional[Tuple[RunPeriod, ...]]) -> VM:
        where = f"OpenNebula VM {raw.ID}"
        t = raw.TEMPLATE
        state, status = vm_state(raw.STATE, raw.LCM_STATE)
        disks = vectors(t, "DISK")
        disk_mb = sum(as_number(d.get("SIZE"), "DISK/SIZE", where, 0) for d in disks)
        image_id = None
        if disks:
            image_id = disks[0].get("VMCATCHER_EVENT_AD_MPURI") or disks[0].get("IMAGE_ID")
        addresses: List[IPAddress] = []
        for nic in vectors(t, "NIC") + vectors(t, "NIC_ALIAS"):
            for key, version in (("IP", 4), ("IP6_GLOBAL", 6), ("IP6", 6), ("IP6_ULA", 6), ("EXTERNAL_IP", 4)):
                value = nic.get(key)
                if isinstance(value, str) and value and all(a.address != value for a in addresses):
                    addresses.append(IPAddress(address=value, version=version, public=is_public(value)))
        netrx, nettx = child_text(raw.node, "MONITORING/NETRX"), child_text(raw.node, "MONITORING/NETTX")
        flavor = lookups.flavors.get(str(t.get("TEMPLATE_ID"))) if t.get("TEMPLATE_ID") is not None else None
        last = raw.node.find("HISTORY_RECORDS/HISTORY[last()]")
        host_id = history_record(last).hid if last is not None else None
        bench_type, bench_value = self._benchmark(host_id, lookups, flavor)
        ended = epoch_time(raw.ETIME) if state is VMState.DELETED else None
        try:
            return VM(
                id=str(raw.ID), name=raw.NAME, project_id=str(raw.GID), user_id=str(raw.UID), state=state,
                status=status, created_at=parse_time(raw.STIME), ended_at=ended,
                flavor_id=flavor.id if flavor is not None else None,
                vcpus=as_number(t.get("VCPU") or t.get("CPU"), "VCPU", where, 1),
                ram_mb=int(as_number(t.get("MEMORY"), "MEMORY", where, 0)), disk_gb=int(math.ceil(disk_mb / 1024)),
                image_id=str(image_id) if image_id is not None else None,
                host=child_text(last, "HOSTNAME") if last is not None and state is not VMState.DELETED else None,
                user_name=self._user_dn(raw, lookups), addresses=tuple(addresses),
                run_periods=periods,
                network_in_bytes=int(as_number(netrx, "MONITORING/NETRX", where)) if netrx else None,
                network_out_bytes=int(as_number(nettx, "MONITORING/NETTX", where)) if nettx else None,
                accelerator=pci_accelerator(t) or (flavor.accelerator if flavor is not None else None),
                benchmark_type=bench_type, benchmark_value=bench_value,
            )
        except (TypeError, ValueError) as exc:
            raise BadCloudData(f"{where}: {exc}") from exc

    def list_vms(self, project_id: Optional[str] = None, active_since: Optional[datetime] = None) -> Iterator[VM]:
        since = to_epoch(active_since) if active_since is not None else None
        lookups: Optional[_Lookups] = None
        started = time.monotonic()
        window: Optional[Tuple[float, Histories]] = None  # records overlapping [since, now]
        deferred: List[Tuple[VM, Dict[int, Record]]] = []
        for raw in self._vm_pages(-2 if since is not None else -1):
            if project_id is not None and str(raw.GID) != project_id:
                continue
            if since is not None and raw.STATE == int(pyone.VM_STATE.DONE) and 0 < raw.ETIME < since:
                continue
            if lookups is None:
                lookups = self._lookups()
            try:
                records = raw.records()
                if not is_complete(records) and since is not None:
                    if window is None:
                        window = self._window(since)
                    merged = {**window[1].get(raw.ID, {}), **records}  # the pool body is the fresher
                    if window[0] < started and window_outdated(merged, since):
                        window = self._window(since, refresh=True)  # read before the VM's latest records
                        merged = {**window[1].get(raw.ID, {}), **records}
                    records = merged
                # without a window, earlier records are unknown: the pool body has only the last one
                periods = run_periods_of(records) if is_complete(records) or since is not None else None
                vm = replace(self._vm(raw, lookups, periods), **first_run_of(records))
            except BadCloudData as exc:
                self.bad_record(exc)
                continue
            if since is None or is_complete(records) or not self.settings.complete_history:
                yield vm
            else:
                deferred.append((vm, records))
        if deferred and since is not None:
            yield from self._complete(deferred, since)

    # -- images -------------------------------------------------------------------------------------------
    def _image(self, raw: Any) -> Image:
        where = f"OpenNebula image {raw.ID}"
        t = raw.TEMPLATE or {}
        props = scalars(t)
        visibility = _visibility(raw.PERMISSIONS)
        try:
            status = _IMAGE_STATUS.get(pyone.IMAGE_STATES(int(raw.STATE)).name, "unknown")
        except ValueError as exc:
            raise BadCloudData(f"{where}: unknown STATE {raw.STATE}") from exc
        if DEACTIVATED_MARKER in props:
            status = "deactivated"
        fmt = props.get("DRIVER") or (raw.FORMAT if isinstance(getattr(raw, "FORMAT", None), str) else None)
        return Image(id=str(raw.ID), name=str(raw.NAME), owner=str(raw.GID), status=status, visibility=visibility,
                     disk_format=fmt or None, container_format="bare",
                     size=int(raw.SIZE) * 1024 * 1024 if raw.SIZE is not None else None,
                     checksum=props.get("MD5"), created_at=epoch_time(raw.REGTIME),
                     updated_at=epoch_time(getattr(raw, "MODTIME", None)), properties=props)

    def _image_kinds(self) -> List[int]:
        kinds = []
        for name in self.settings.image_types:
            try:
                kinds.append(int(pyone.IMAGE_TYPES[name.upper()]))
            except KeyError as exc:
                raise CloudError(f"cloud.opennebula.image_types: unknown image type {name!r}") from exc
        return kinds

    def list_images(self, owner: Optional[str] = None) -> Iterator[Image]:
        kinds = self._image_kinds()
        for raw in self._call("one.imagepool.info", -2, -1, -1).IMAGE:
            if raw.TYPE not in kinds or (owner is not None and str(raw.GID) != owner):
                continue
            image = self._checked(self._image, raw)
            if image is not None:
                yield image

    def get_image(self, image_id: str) -> Image:
        return self._image(self._call("one.image.info", self._int_id(image_id, "image")))

    def _visibility_bits(self, visibility: str) -> Tuple[int, ...]:
        group_u = 1 if visibility in ("shared", "public", "community") else 0
        other_u = 1 if visibility in ("public", "community") else 0
        return (1, 1, -1, group_u, -1, -1, other_u, -1, -1)

    def image_name(self, name: str, distinct: str = "") -> str:
        """``name`` (plus `` [distinct]``) with the characters oned refuses replaced by ``-``, cut to 128."""
        def clean(text: str) -> str:
            return " ".join(_INVALID_NAME_CHARS.sub("-", text).split())

        suffix = f" [{clean(distinct)}]" if clean(distinct) else ""
        base = clean(name)[: max(MAX_NAME_LENGTH - len(suffix), 0)].rstrip()
        return ((base + suffix) if base else suffix.strip() or "image")[:MAX_NAME_LENGTH]

    def _datastore(self, spec: ImageSpec) -> int:
        if spec.datastore is None:
            return self.settings.datastore_id
        try:
            datastore = int(spec.datastore)
        except ValueError as exc:
            raise CloudError(f"OpenNebula datastores are given by id, got {spec.datastore!r} for image "
                             f"{spec.name!r}") from exc
        if datastore < 0:
            raise CloudError(f"OpenNebula datastore id {datastore} for image {spec.name!r} is negative")
        return datastore

    def create_image(self, spec: ImageSpec, data: BinaryIO) -> Image:
        if self.settings.upload_dir is None:
            raise NotSupported("cloud.opennebula.upload_dir is not set: there is nowhere to stage image files "
                               "for oned")
        datastore = self._datastore(spec)
        self.settings.upload_dir.mkdir(parents=True, exist_ok=True)
        suffix = attribute_name(spec.disk_format).lower()
        staged = self.settings.upload_dir / f"fedcloud-site-{uuid.uuid4().hex}.{suffix}"
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with open(staged, "wb") as out:
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(staged, 0o644)
            attributes: Dict[str, Any] = {attribute_name(k): v for k, v in spec.properties.items()}
            attributes.update({"NAME": self.image_name(spec.name), "PATH": str(staged), "TYPE": "OS",
                               "DRIVER": spec.disk_format, "MD5": digest.hexdigest()})
            image_id = self._call("one.image.allocate", template_xml(attributes), datastore)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        try:
            if spec.owner is not None:
                self._call("one.image.chown", image_id, -1, self._int_id(spec.owner, "group"))
            self._call("one.image.chmod", image_id, *self._visibility_bits(spec.visibility))
            self._wait_ready(image_id)
        except _StillCopying:
            raise  # oned may still be reading the staged file: leave both for the next run to see
        except BaseException:
            self._discard_image(image_id)  # a half-registered image must not stay behind
            staged.unlink(missing_ok=True)
            raise
        staged.unlink(missing_ok=True)
        return self.get_image(str(image_id))

    def _discard_image(self, image_id: int) -> None:
        try:
            self._call("one.image.delete", image_id)
        except CloudError:
            pass  # best effort: the original error is the one to report

    def _wait_ready(self, image_id: int) -> None:
        deadline = time.monotonic() + float(self.settings.image_ready_timeout)
        while True:
            raw = self._call("one.image.info", image_id)
            state = pyone.IMAGE_STATES(int(raw.STATE))
            if state in (pyone.IMAGE_STATES.READY, pyone.IMAGE_STATES.USED, pyone.IMAGE_STATES.USED_PERS):
                return
            if state is pyone.IMAGE_STATES.ERROR:
                message = (raw.TEMPLATE or {}).get("ERROR", "no error message")
                raise CloudError(f"OpenNebula image {image_id} failed to register: {message}")
            if time.monotonic() >= deadline:
                raise _StillCopying(f"OpenNebula image {image_id} still {state.name} after "
                                       f"{float(self.settings.image_ready_timeout):g}s")
            time.sleep(float(self.settings.poll_interval))

    def update_image(self, image_id: str, properties: Mapping[str, Optional[str]], name: Optional[str] = None,
                     visibility: Optional[str] = None) -> Image:
        oid = self._int_id(image_id, "image")
        raw = self._call("one.image.info", oid)
        template: Dict[str, Any] = dict(raw.TEMPLATE or {})
        for key, value in properties.items():
            attr = attribute_name(key)
            if value is None:
                template.pop(attr, None)
            else:
                template[attr] = value
        self._call("one.image.update", oid, template_xml(template), 0)
        if name is not None and self.image_name(name) != raw.NAME:
            self._call("one.image.rename", oid, self.image_name(name))
        if visibility is not None:
            self._call("one.image.chmod", oid, *self._visibility_bits(visibility))
        return self.get_image(image_id)

    def set_image_active(self, image_id: str, active: bool) -> None:
        """Disable (or enable) an image.  oned refuses to disable an image VMs use; such an image is
        hidden instead: its group/other USE permissions are dropped and remembered in
        ``FEDCLOUD_SITE_DEACTIVATED`` to be restored on reactivation."""
        oid = self._int_id(image_id, "image")
        raw = self._call("one.image.info", oid)
        state = pyone.IMAGE_STATES(int(raw.STATE))
        hidden = (raw.TEMPLATE or {}).get(DEACTIVATED_MARKER)
        if active:
            if state in (pyone.IMAGE_STATES.DISABLED, pyone.IMAGE_STATES.ERROR):
                self._call("one.image.enable", oid, True)
            if isinstance(hidden, str):
                group_u, other_u = (int(x) for x in (hidden.split(",") + ["0", "0"])[:2])
                self._call("one.image.chmod", oid, -1, -1, -1, group_u, -1, -1, other_u, -1, -1)
                self._call("one.image.update", oid, template_xml(
                    {k: v for k, v in (raw.TEMPLATE or {}).items() if k != DEACTIVATED_MARKER}), 0)
            return
        if state in (pyone.IMAGE_STATES.READY, pyone.IMAGE_STATES.ERROR, pyone.IMAGE_STATES.DISABLED):
            self._call("one.image.enable", oid, False)
            return
        if not isinstance(hidden, str):
            perms = raw.PERMISSIONS
            self._call("one.image.update", oid,
                       template_xml({DEACTIVATED_MARKER: f"{int(perms.GROUP_U)},{int(perms.OTHER_U)}"}), 1)
            self._call("one.image.chmod", oid, -1, -1, -1, 0, -1, -1, 0, -1, -1)

    def delete_image(self, image_id: str) -> None:
        self._call("one.image.delete", self._int_id(image_id, "image"))

    def image_in_use(self, image_id: str) -> Optional[bool]:
        raw = self._call("one.image.info", self._int_id(image_id, "image"))
        return int(raw.RUNNING_VMS or 0) > 0

    # -- VM templates -------------------------------------------------------------------------------------
    def _template(self, raw: Any) -> VMTemplate:
        where = f"OpenNebula template {raw.ID}"
        t = raw.TEMPLATE or {}
        visibility = _visibility(raw.PERMISSIONS)
        images = tuple(str(d["IMAGE_ID"]) for d in vectors(t, "DISK") if d.get("IMAGE_ID") not in (None, ""))
        return VMTemplate(id=str(raw.ID), name=str(raw.NAME), image_ids=images, owner=str(raw.GID),
                          visibility=visibility, vcpus=as_number(t.get("VCPU") or t.get("CPU"), "VCPU", where, 1),
                          ram_mb=int(as_number(t.get("MEMORY"), "MEMORY", where, 0)), properties=scalars(t))

    def create_template(self, spec: TemplateSpec) -> VMTemplate:
        attributes: Dict[str, Any] = {attribute_name(k): v for k, v in spec.properties.items()}
        attributes.update({attribute_name(k): v for k, v in spec.attributes.items()})
        attributes.update({"NAME": self.image_name(spec.name), "CPU": f"{spec.cpu:g}", "VCPU": str(spec.vcpus),
                           "MEMORY": str(spec.ram_mb), "DISK": {"IMAGE_ID": str(self._int_id(spec.image_id, "image"))}})
        if spec.arch:
            os_attribute = attributes.get("OS")
            attributes["OS"] = dict(os_attribute, ARCH=spec.arch) if isinstance(os_attribute, Mapping) \
                else {"ARCH": spec.arch}
        oid = int(self._call("one.template.allocate", template_xml(attributes)))
        try:
            if spec.owner is not None:
                self._call("one.template.chown", oid, -1, self._int_id(spec.owner, "group"))
            self._call("one.template.chmod", oid, *self._visibility_bits(spec.visibility), False)
        except BaseException:
            try:
                self._call("one.template.delete", oid, False)
            except CloudError:
                pass  # best effort: the original error is the one to report
            raise
        return self._template(self._call("one.template.info", oid))

    def list_templates(self) -> Iterator[VMTemplate]:
        for raw in self._call("one.templatepool.info", -2, -1, -1).VMTEMPLATE:
            template = self._checked(self._template, raw)
            if template is not None:
                yield template

    def delete_template(self, template_id: str) -> None:
        self._call("one.template.delete", self._int_id(template_id, "template"), False)  # never its images

    # -- users and groups ---------------------------------------------------------------------------------
    def list_groups(self) -> Iterator[Group]:
        for group in self._call("one.grouppool.info").GROUP:
            yield Group(id=str(group.ID), name=str(group.NAME))

    def _user(self, raw: Any, quota: Optional[Quota] = None) -> User:
        t = scalars(raw.TEMPLATE)
        groups = [int(raw.GID)] + [int(g) for g in (raw.GROUPS.ID if raw.GROUPS is not None else [])
                                   if int(g) != int(raw.GID)]
        keys = [k for k in (t.get("SSH_PUBLIC_KEY") or "").splitlines() if k.strip()]
        return User(id=str(raw.ID), name=str(raw.NAME), email=t.get("EMAIL") or None,
                    display_name=t.get("DISPLAY_NAME") or t.get("NAME") or None, enabled=bool(int(raw.ENABLED)),
                    groups=tuple(str(g) for g in groups), x509_dns=tuple(user_dns(raw)), ssh_keys=tuple(keys),
                    properties={k: v for k, v in t.items() if k not in _USER_FIELDS}, quota=quota)

    def list_users(self) -> Iterator[User]:
        pool = self._call("one.userpool.info")
        root = pool.gds_elementtree_node_
        defaults = root.find("DEFAULT_USER_QUOTAS") if root is not None else None
        quotas = {child_text(q, "ID"): q for q in root.iterfind("QUOTAS")} if root is not None else {}
        for raw in pool.USER:
            try:
                user = self._user(raw, user_quota(quotas.get(str(raw.ID)), defaults))
            except (BadCloudData, TypeError, ValueError) as exc:
                self.bad_record(exc if isinstance(exc, BadCloudData)
                                else BadCloudData(f"OpenNebula user {raw.ID}: {exc}"))
                continue
            yield user

    def _get_user(self, user_id: int) -> User:
        return self._info_user(self._call("one.user.info", user_id))

    def _info_user(self, raw: Any) -> User:
        """A user from ``one.user.info`` (its quota is inline there)."""
        node = raw.gds_elementtree_node_
        return self._user(raw, user_quota(node, node.find("DEFAULT_USER_QUOTAS") if node is not None else None))

    def _user_template(self, current: Mapping[str, Any], spec: UserSpec) -> Dict[str, Any]:
        """The user's template with our attributes replaced by ``spec`` and the rest kept."""
        previous = str(current.get("FEDCLOUD_SITE_PROPERTIES") or "").split(",")
        template = {k: v for k, v in current.items() if k not in USER_MANAGED_ATTRIBUTES and k not in previous}
        props = {attribute_name(k): v for k, v in spec.properties.items()}
        template.update(props)
        if spec.email:
            template["EMAIL"] = spec.email
        if spec.display_name:
            template["DISPLAY_NAME"] = spec.display_name
        if spec.x509_dns:
            template["X509_DN"] = "|".join(checked_dns(list(spec.x509_dns)))
        if spec.ssh_keys:
            template["SSH_PUBLIC_KEY"] = "\n".join(spec.ssh_keys)
        template[MANAGED_MARKER] = "yes"
        if props:
            template["FEDCLOUD_SITE_PROPERTIES"] = ",".join(sorted(props))
        return template

    def _auth(self, spec: UserSpec) -> Tuple[str, str]:
        if spec.x509_dns:
            return self.settings.user_auth_driver, x509_password(list(spec.x509_dns))
        return "core", uuid.uuid4().hex  # no DN: a random password nobody knows

    def create_user(self, spec: UserSpec) -> User:
        groups = [self._int_id(g, "group") for g in spec.groups]
        driver, password = self._auth(spec)
        oid = int(self._call("one.user.allocate", spec.name, password, driver, groups))
        self._call("one.user.update", oid, template_xml(self._user_template({}, spec)), 0)
        if not spec.enabled:
            self._call("one.user.enable", oid, False)
        if spec.quota is not None:
            self._set_user_quota(oid, spec.quota)
        return self._get_user(oid)

    def update_user(self, user_id: str, spec: UserSpec) -> User:
        oid = self._int_id(user_id, "user")
        raw = self._call("one.user.info", oid)
        current = self._info_user(raw)
        wanted = [self._int_id(g, "group") for g in spec.groups]
        have = [int(g) for g in current.groups]
        if wanted and wanted[0] != have[0]:
            self._call("one.user.chgrp", oid, wanted[0])
            have = [wanted[0]] + [g for g in have if g != wanted[0]]
        for gid in wanted:
            if gid not in have:
                self._call("one.user.addgroup", oid, gid)
        for gid in have:
            if gid not in wanted and wanted and gid != wanted[0]:
                self._call("one.user.delgroup", oid, gid)
        if spec.x509_dns:
            driver, password = self._auth(spec)
            if (str(raw.AUTH_DRIVER), str(raw.PASSWORD)) != (driver, password):
                self._call("one.user.chauth", oid, driver, password)
        elif str(raw.AUTH_DRIVER) == self.settings.user_auth_driver:
            self._call("one.user.chauth", oid, *self._auth(spec))  # DNs gone: no certificate login any more
        template = self._user_template(dict(raw.TEMPLATE or {}), spec)
        if template != dict(raw.TEMPLATE or {}):
            self._call("one.user.update", oid, template_xml(template), 0)
        if spec.enabled != current.enabled:
            self._call("one.user.enable", oid, bool(spec.enabled))
        if spec.quota is not None and not quota_holds(current.quota, spec.quota):
            self._set_user_quota(oid, spec.quota)
        return self._get_user(oid)

    def _set_user_quota(self, oid: int, quota: Quota) -> None:
        """Set the limits ``quota`` gives (None fields are left as they are)."""
        vm = {attr: str(value) for attr, value in (("VMS", quota.instances), ("CPU", quota.cores),
                                                   ("MEMORY", quota.ram_mb)) if value is not None}
        if vm:
            self._call("one.user.quota", oid, template_xml({"VM": vm}))

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        self._call("one.user.enable", self._int_id(user_id, "user"), bool(enabled))

    def delete_user(self, user_id: str) -> None:
        self._call("one.user.delete", self._int_id(user_id, "user"))
