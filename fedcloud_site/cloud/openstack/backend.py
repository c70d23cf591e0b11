"""The ``openstack`` backend (the facade the daemons use): Keystone v3, Nova, Glance v2, Neutron and Cinder
through openstacksdk.

Authentication (``cloud.openstack``): Keystone v3 password or application
credential, given directly or as a named cloud of a ``clouds.yaml``; project or
system scope.  Listing every project's VMs needs the ``admin`` role (or a
system-scoped ``reader``).

Every listing pages with ``limit``/``marker`` (``page_size`` items per call) and
never makes one HTTP call per VM: ``list_vms`` is one paged pass over the live
servers plus, with ``active_since``, one paged pass over the servers deleted
since then (``changes-since``).  Flavours and Keystone users are read once per
backend instance and cached; ``list_flavors`` also reads the access list of each
private flavour once (one request per private flavour: ``Flavor.projects``), and
the names of Keystone domains once (``Project.domain``: one domain listing, or
one request per domain for credentials that may not list them).
Paging continues until the cloud answers an empty page, so a page cut short by
the server loses nothing; a page whose body is cut or a transient 5xx/connection
failure is retried ``retries`` times; 401 (token expired or revoked) makes
keystoneauth authenticate again.

Nova status -> :class:`VMState` (``NOVA_STATES``):

=====================================================================  ==========
ACTIVE, REBOOT, HARD_REBOOT, REBUILD, MIGRATING, RESIZE, VERIFY_RESIZE,  running
REVERT_RESIZE, PASSWORD, RESCUE
BUILD                                                                  pending
PAUSED                                                                 paused
SUSPENDED                                                              suspended
SHUTOFF, SHELVED, SHELVED_OFFLOADED, SOFT_DELETED                      stopped
ERROR                                                                  error
DELETED                                                                deleted
UNKNOWN and anything else                                              unknown
=====================================================================  ==========

Users created by this backend carry the Keystone user attribute
``fedcloud_site_managed: true`` (``MANAGED_ATTRIBUTE``) and keep X.509 DNs and SSH
keys in the attributes ``x509_dns`` and ``ssh_keys``; users without the marker
are never updated, disabled or deleted.  Groups are projects: a user's groups
are the projects where it holds a role (``member_role`` is granted/revoked).

:mod:`.session` holds the HTTP side (connection, error mapping, paging, microversions), :mod:`.records`
the pure converters and state tables, :mod:`.settings` the configuration section.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
from collections import Counter
from datetime import datetime
from typing import (
    Any,
    BinaryIO,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from ...timeutil import iso_utc, parse_time
from ..base import (
    VM,
    BackendDeclaration,
    BadCloudData,
    Capability,
    Capacity,
    CloudAuthError,
    CloudBackend,
    CloudError,
    Flavor,
    FloatingIP,
    Group,
    Image,
    ImageSpec,
    IPAddress,
    LazyMembers,
    MiddlewareFacts,
    NotFound,
    NotSupported,
    Project,
    Quota,
    StateChange,
    User,
    UserSpec,
    VMState,
    Volume,
)
from ..flavor_specs import decode_flavor_specs
from .records import (
    GLANCE_PATCH,
    IMAGE_CORE,
    MANAGED_ATTRIBUTE,
    NOVA_STATES,
    PROJECT_CORE,
    USER_CORE,
    flavor_record,
    floating_ip_record,
    glance_image_name,
    state_change,
    user_record,
)
from .session import (
    COMPUTE_MICROVERSION,
    FLAVOR_EXTRA_SPECS_MICROVERSION,
    HYPERVISOR_STATS_MICROVERSION,
    INSTANCE_ACTIONS_DELETED_MICROVERSION,
    INSTANCE_ACTIONS_PAGED_MICROVERSION,
    VOLUME_MICROVERSION,
    Session,
    log,
)
from .settings import OpenStackSettings


class OpenStackBackend(CloudBackend):
    """OpenStack through openstacksdk (see module docs)."""

    name = "openstack"
    Settings = OpenStackSettings
    declaration = BackendDeclaration(
        label="OpenStack",
        middleware=MiddlewareFacts(
            api_type="OpenStack", api_version="v3", interface_name="org.openstack.nova",
            implementor="OpenStack Foundation", implementation_name="OpenStack Nova",
            semantics="https://developer.openstack.org/api-ref/compute", product_name="OpenStack"),
        capabilities=frozenset({Capability.USAGE, Capability.VOLUMES, Capability.FLOATING_IPS,
                                Capability.IMAGE_WRITE, Capability.USERS}),
        protected_users=frozenset({"admin"}))
    filters_vms_by_project = True  # Nova's project_id query parameter

    def __init__(self, settings: OpenStackSettings, config: Any = None) -> None:
        self.settings = settings
        self.session = Session(settings)
        self._flavors: Optional[Dict[str, Flavor]] = None  # readable flavours by id
        self._flavor_listing: List[Union[Flavor, BadCloudData]] = []  # in listing order, unreadable ones too
        self._unreadable_flavors: Dict[str, BadCloudData] = {}
        self._flavor_access_read = False  # private flavours' projects filled in (list_flavors only)
        self._domain_names: Dict[str, str] = {}  # Keystone domain id -> name (the id where it cannot be read)
        self._domains_listed = False
        self._user_names: Optional[Dict[str, str]] = None
        self._external_networks: Optional[Set[str]] = None
        self._role_ids: Dict[str, str] = {}
        self._all_tenants: Optional[bool] = None  # may these credentials list every project's servers?

    def close(self) -> None:
        self.session.close()

    def request_count(self) -> Mapping[str, Any]:
        """``{"requests": total, "by_endpoint": {"GET /compute/v2.1/servers/detail": n, ...}}``."""
        return self.session.request_count()

    # -- projects, flavours, capacity ----------------------------------------------------------------
    def _project(self, raw: Mapping[str, Any]) -> Project:
        props = {str(k): str(v) for k, v in raw.items() if k not in PROJECT_CORE and v is not None}
        tags = raw.get("tags") or []
        if tags:
            props["tags"] = ",".join(str(t) for t in tags)
        return Project(id=str(raw["id"]), name=str(raw.get("name") or raw["id"]),
                       enabled=bool(raw.get("enabled", True)), domain=self._domain_name(raw.get("domain_id")),
                       description=str(raw.get("description") or ""), properties=props)

    def _domain_name(self, domain_id: Any) -> Optional[str]:
        """The name of a Keystone domain (``Default``), read once per backend: one ``GET /domains``, then
        ``GET /domains/{id}`` for a domain not in that list; the id when the credentials may not read it."""
        if not domain_id:
            return None
        domain_id = str(domain_id)
        if not self._domains_listed:
            try:
                body = self.session.json(self.session.call("identity", "GET", "/domains", "list domains", retry=True),
                                         "list domains")
                for raw in body.get("domains") or []:
                    if isinstance(raw, dict) and raw.get("id") and raw.get("name"):
                        self._domain_names[str(raw["id"])] = str(raw["name"])
            except CloudAuthError as exc:
                log.info("openstack_domains_unlisted", error=str(exc)[:300], consequence="domains read one by one")
            self._domains_listed = True  # listed, or refused: not asked again (an unavailable cloud raises)
        if domain_id not in self._domain_names:
            name = domain_id
            try:
                body = self.session.json(self.session.call("identity", "GET", f"/domains/{domain_id}",
                                                           f"domain {domain_id}", retry=True), "domain")
                name = str((body.get("domain") or {}).get("name") or domain_id)
            except (CloudAuthError, NotFound) as exc:
                log.warning("openstack_domain_name_unreadable", domain=domain_id, error=str(exc)[:300],
                            consequence="projects carry the domain id instead of its name")
            self._domain_names[domain_id] = name
        return self._domain_names[domain_id]

    def list_projects(self) -> Iterator[Project]:
        """All projects (admin), else the projects the credentials' user has a role on; with the name of
        their Keystone domain (``Default``, as cloud-info-provider publishes it)."""
        try:
            body = self.session.json(self.session.call("identity", "GET", "/projects", "list projects", retry=True),
                                     "list projects")
        except CloudAuthError:
            body = self.session.json(self.session.call("identity", "GET", "/auth/projects", "list own projects",
                                                       retry=True), "list own projects")
        if body.get("truncated"):
            raise BadCloudData("list projects: Keystone truncated the list (its list_limit is lower than the number "
                               "of projects); raise list_limit in keystone.conf")
        for raw in body.get("projects") or []:
            yield self._project(raw)

    def list_groups(self) -> Iterator[Group]:
        """Groups are projects."""
        for project in self.list_projects():
            yield Group(id=project.id, name=project.name)

    def _load_flavors(self) -> Dict[str, Flavor]:
        """Readable flavours by id (read once per backend); unreadable ones are kept aside in the listing."""
        if self._flavors is None:
            version = min(self.session.compute_max(), COMPUTE_MICROVERSION)
            embedded_specs = version >= FLAVOR_EXTRA_SPECS_MICROVERSION
            flavors: Dict[str, Flavor] = {}
            listing: List[Union[Flavor, BadCloudData]] = []
            for raw in self.session.pages("compute", "/flavors/detail", {"is_public": "None"}, "flavors",
                                          "list flavors", microversion=f"{version[0]}.{version[1]}"):
                specs = raw.get("extra_specs") if embedded_specs else None
                if specs is None:
                    try:
                        specs = self.session.json(
                            self.session.call("compute", "GET", f"/flavors/{raw['id']}/os-extra_specs",
                                              f"flavor {raw['id']} extra specs", retry=True),
                            "extra specs").get("extra_specs", {})
                    except NotFound:
                        log.info("openstack_flavor_gone", flavor=raw["id"])  # deleted since the listing
                        continue
                try:
                    flavor = flavor_record(raw, specs)
                except BadCloudData as exc:
                    listing.append(exc)
                    self._unreadable_flavors[str(raw["id"])] = exc
                    continue
                flavors[flavor.id] = flavor
                listing.append(flavor)
            self._flavors, self._flavor_listing = flavors, listing
        return self._flavors

    def _access_of(self, flavor: Flavor) -> Tuple[str, ...]:
        """Project ids of a private flavour's access list (``GET /flavors/{id}/os-flavor-access``)."""
        body = self.session.json(self.session.call("compute", "GET", f"/flavors/{flavor.id}/os-flavor-access",
                                                   f"access list of flavor {flavor.id}", retry=True), "flavor access")
        entries = body.get("flavor_access") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise BadCloudData(f"flavor {flavor.id} ({flavor.name}): its access list has no 'flavor_access' list")
        projects = []
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("tenant_id"):
                raise BadCloudData(f"flavor {flavor.id} ({flavor.name}): access entry without tenant_id: "
                                   f"{str(entry)[:200]}")
            if str(entry["tenant_id"]) not in projects:
                projects.append(str(entry["tenant_id"]))
        return tuple(projects)

    def _load_flavor_access(self) -> None:
        """Fill ``projects`` of the private flavours: one request per private flavour, once per backend.

        Credentials that may not read access lists (403: Nova's default policy lets admins only)
        leave ``projects`` None (not told) and no further access list is asked for.
        """
        if self._flavor_access_read:
            return
        listing: List[Union[Flavor, BadCloudData]] = []
        readable = True
        for entry in self._flavor_listing:
            if isinstance(entry, BadCloudData) or entry.public or not readable:
                listing.append(entry)
                continue
            try:
                entry = dataclasses.replace(entry, projects=self._access_of(entry))
            except CloudAuthError as exc:
                log.warning("openstack_flavor_access_unreadable", error=str(exc)[:300],
                            consequence="private flavours are listed without their projects")
                readable = False
            except NotFound:
                log.info("openstack_flavor_gone", flavor=entry.id)  # deleted (or made public) since the listing
                continue
            except BadCloudData as exc:
                listing.append(exc)
                self._unreadable_flavors[entry.id] = exc
                continue
            listing.append(entry)
        self._flavor_listing = listing
        self._flavors = {f.id: f for f in listing if isinstance(f, Flavor)}
        self._flavor_access_read = True

    def list_flavors(self) -> Iterator[Flavor]:
        """Every flavour, public and private, in Nova's order, read once per backend.

        A private flavour's ``projects`` come from its access list (one request per private
        flavour, the first time only).  A flavour that cannot be read goes to :meth:`bad_record`
        with an error naming it, and the others are still listed.
        """
        self._load_flavors()
        self._load_flavor_access()
        for entry in self._flavor_listing:
            if isinstance(entry, BadCloudData):
                self.bad_record(entry)
            else:
                yield entry

    def capacity(self) -> Capacity:
        """Sums over the hypervisors (compute API at microversion 2.87, the last one with their statistics)."""
        version = self.session.compute_microversion(HYPERVISOR_STATS_MICROVERSION)
        total = Counter[str]()
        hypervisor_type = hypervisor_version = None
        found = False
        for raw in self.session.pages("compute", "/os-hypervisors/detail", {}, "hypervisors", "list hypervisors",
                                      microversion=version):
            found = True
            for key in ("vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "running_vms"):
                if isinstance(raw.get(key), int):
                    total[key] += raw[key]
            hypervisor_type = hypervisor_type or raw.get("hypervisor_type")
            if hypervisor_version is None and isinstance(raw.get("hypervisor_version"), int):
                v = raw["hypervisor_version"]
                hypervisor_version = f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"
        if not found:
            return Capacity()
        return Capacity(total_vcpus=total["vcpus"], used_vcpus=total["vcpus_used"], total_ram_mb=total["memory_mb"],
                        used_ram_mb=total["memory_mb_used"], running_vms=total["running_vms"],
                        hypervisor=hypervisor_type, hypervisor_version=hypervisor_version)

    def quota(self, project_id: str) -> Quota:
        body = self.session.json(self.session.call("compute", "GET", f"/os-quota-sets/{project_id}",
                                                   f"quota of {project_id}", retry=True), "quota")
        quota = body.get("quota_set") or {}

        def limit(key: str) -> Optional[int]:
            value = quota.get(key)
            return None if value is None or value < 0 else int(value)

        return Quota(instances=limit("instances"), cores=limit("cores"), ram_mb=limit("ram"))

    # -- VMs ----------------------------------------------------------------------------------------------
    def _load_user_names(self) -> Dict[str, str]:
        if self._user_names is None:
            try:
                self._user_names = {u["id"]: u["name"] for u in self._list_keystone_users()}
            except CloudAuthError as exc:
                log.warning("openstack_user_names_unavailable", error=str(exc))
                self._user_names = {}
        return self._user_names

    def _external_network_names(self) -> Set[str]:
        if self._external_networks is None:
            try:
                self._external_networks = {
                    str(n.get("name")) for n in self.session.pages("network", "/networks", {"router:external": "True"},
                                                             "networks", "list external networks")}
            except (NotSupported, CloudAuthError):
                self._external_networks = set()
        return self._external_networks

    def _server_pages(self, params: Mapping[str, Any], what: str) -> Iterator[Dict[str, Any]]:
        """Servers; credentials that may not list all projects fall back to their own project."""
        params = dict(params)
        if self._all_tenants is False:
            params.pop("all_tenants", None)
            params.pop("project_id", None)
        yielded = False
        try:
            for raw in self.session.pages("compute", "/servers/detail", params, "servers", what,
                                          microversion=self.session.compute_microversion()):
                yielded = True
                yield raw
        except CloudAuthError as exc:
            if yielded or "all_tenants" not in params:
                raise
            own = self._own_project()
            wanted = params.get("project_id")
            if own is None or (wanted is not None and wanted != own):
                raise CloudAuthError(f"{what}: these credentials may not list other projects' servers (needs the "
                                     f"admin role or a system-scoped reader)") from exc
            log.warning("openstack_own_project_only", project=own,
                        reason="credentials may not list all projects' servers")
            self._all_tenants = False
            yield from self._server_pages(params, what)
            return
        if "all_tenants" in params:
            self._all_tenants = True

    def _own_project(self) -> Optional[str]:
        try:
            return str(self.session.conn.current_project_id) if self.session.conn.current_project_id else None
        except Exception:  # noqa: BLE001 - no project scope
            return None

    def list_vms(self, project_id: Optional[str] = None, active_since: Optional[datetime] = None) -> Iterator[VM]:
        """Live servers (one paged pass) + with ``active_since`` the servers deleted since then (another)."""
        base: Dict[str, Any] = {"all_tenants": "True"}
        if project_id is not None:
            base["project_id"] = project_id
        scope = f"project {project_id}" if project_id else "all projects"
        flavors = self._load_flavors()
        by_name = {f.name: f for f in flavors.values()}
        users = self._load_user_names()
        public_nets = self._external_network_names()
        for raw in self._server_pages(base, f"list servers of {scope}"):
            vm = self._checked(self._vm, raw, flavors, by_name, users, public_nets)
            if vm is not None and vm.state is not VMState.DELETED:
                yield vm
        if active_since is None:
            return
        since = dict(base, **{"changes-since": iso_utc(active_since), "deleted": "True"})
        for raw in self._server_pages(since, f"list servers of {scope} deleted since {iso_utc(active_since)}"):
            if str(raw.get("status", "")).upper() != "DELETED":
                continue  # clouds that ignore "deleted" also return live servers, seen above
            vm = self._checked(self._vm, raw, flavors, by_name, users, public_nets)
            if vm is not None and (vm.ended_at is None or vm.ended_at >= active_since):
                yield vm

    def _vm(self, raw: Mapping[str, Any], flavors: Mapping[str, Flavor], by_name: Mapping[str, Flavor],
            users: Mapping[str, str], public_nets: Set[str]) -> VM:
        server_id = str(raw.get("id"))
        where = f"server {server_id}"

        def when(key: str, required: bool = False) -> Optional[datetime]:
            value = raw.get(key)
            if value in (None, ""):
                if required:
                    raise BadCloudData(f"{where}: missing {key}")
                return None
            try:
                return parse_time(value)
            except ValueError as exc:
                raise BadCloudData(f"{where}: {key} is not a time: {value!r}") from exc

        status = str(raw.get("status") or "UNKNOWN").upper()
        state = NOVA_STATES.get(status, VMState.UNKNOWN)
        created = when("created", required=True)
        assert created is not None
        updated = when("updated")
        ended = when("OS-SRV-USG:terminated_at") or (updated if state is VMState.DELETED else None)
        flavor_raw = raw.get("flavor")
        if not isinstance(flavor_raw, dict):
            raise BadCloudData(f"{where}: flavor is not an object: {flavor_raw!r}")
        known: Optional[Flavor]
        try:
            if "vcpus" in flavor_raw:  # embedded (microversion >= 2.47)
                known = by_name.get(str(flavor_raw.get("original_name")))
                specs = {str(k): str(v) for k, v in (flavor_raw.get("extra_specs") or {}).items()}
                accelerator, bench_type, bench_value = decode_flavor_specs(specs)
                vcpus, ram = float(flavor_raw["vcpus"]), int(flavor_raw["ram"])
                disk = int(flavor_raw.get("disk") or 0) + int(flavor_raw.get("ephemeral") or 0)
            else:
                known = flavors.get(str(flavor_raw.get("id")))
                if known is None and str(flavor_raw.get("id")) in self._unreadable_flavors:
                    raise BadCloudData(f"{where}: its flavour cannot be read "
                                       f"({self._unreadable_flavors[str(flavor_raw.get('id'))]})")
                accelerator = known.accelerator if known else None
                bench_type = known.benchmark_type if known else None
                bench_value = known.benchmark_value if known else None
                vcpus = known.vcpus if known else 0.0
                ram = known.ram_mb if known else 0
                disk = (known.disk_gb + known.ephemeral_gb) if known else 0
        except (KeyError, TypeError, ValueError) as exc:
            raise BadCloudData(f"{where}: bad flavor {flavor_raw!r}: {exc}") from exc
        image = raw.get("image")
        image_id = str(image["id"]) if isinstance(image, dict) and image.get("id") else None
        addresses: List[IPAddress] = []
        for network, entries in (raw.get("addresses") or {}).items():
            for entry in entries or []:
                try:
                    address = ipaddress.ip_address(str(entry["addr"]))
                except (KeyError, TypeError, ValueError) as cause:
                    raise BadCloudData(f"{where}: bad address {entry!r} on network {network}") from cause
                floating = entry.get("OS-EXT-IPS:type") == "floating"
                public = floating or network in public_nets or address.is_global
                addresses.append(IPAddress(address=str(address), version=address.version, floating=floating,
                                           public=public))
        # launched_at is reset by rebuild/resize/unshelve, so it only tells whether the server ever booted
        ever_ran = None if "OS-SRV-USG:launched_at" not in raw else raw["OS-SRV-USG:launched_at"] not in (None, "")
        user_id = str(raw.get("user_id") or "")
        project = raw.get("tenant_id") or raw.get("project_id")
        if not project:
            raise BadCloudData(f"{where}: missing tenant_id")
        return VM(id=server_id, name=str(raw.get("name") or server_id), project_id=str(project), user_id=user_id,
                  state=state, status=status, created_at=created, ended_at=ended if state is VMState.DELETED else None,
                  updated_at=updated, flavor_id=known.id if known else (str(flavor_raw["id"]) if "id" in flavor_raw
                                                                      else None),
                  vcpus=vcpus, ram_mb=ram, disk_gb=disk, image_id=image_id,
                  host=raw.get("OS-EXT-SRV-ATTR:host"), user_name=users.get(user_id), addresses=tuple(addresses),
                  ever_ran=ever_ran, accelerator=accelerator, benchmark_type=bench_type, benchmark_value=bench_value)

    def vm_state_history(self, vm: VM, since: datetime) -> Optional[Sequence[StateChange]]:
        """The server's state changes from its instance actions (``GET /servers/{id}/os-instance-actions``,
        newest first, paged with ``limit``/``marker`` from microversion 2.58; deleted servers from 2.21).

        Pages stop at the last action that set the state before ``since`` (usually the first page).  A
        successful ``create`` starts the history (at its ``updated_at``, when the build ended); a failed one
        is an ``error`` entry.  Actions that leave the power state alone (resize, migrate, rebuild, attach,
        ...) and failed actions are skipped.  Without a ``create`` (actions purged) the history starts with
        ``running`` at the server's creation."""
        version = self.session.compute_max()
        if version < INSTANCE_ACTIONS_DELETED_MICROVERSION:
            return None  # deleted servers' actions cannot be read: no history rather than part of one
        paged = version >= INSTANCE_ACTIONS_PAGED_MICROVERSION
        microversion = self.session.compute_microversion(INSTANCE_ACTIONS_PAGED_MICROVERSION)
        what = f"instance actions of server {vm.id}"
        limit = min(self.settings.page_size, 100)
        params: Dict[str, Any] = {"limit": limit} if paged else {}
        changes: List[StateChange] = []
        created: Optional[StateChange] = None
        settled = False  # an action at or before ``since`` fixed the state then
        while True:
            response = self.session.call("compute", "GET", f"/servers/{vm.id}/os-instance-actions", what,
                                         params=dict(params), retry=True, microversion=microversion)
            body = self.session.json(response, what)
            actions = body.get("instanceActions") if isinstance(body, dict) else None
            if not isinstance(actions, list):
                raise BadCloudData(f"{what}: the answer has no 'instanceActions' list")
            for raw in actions:
                change = state_change(raw, what)
                if change is None:
                    continue
                if isinstance(change, tuple):  # the create action
                    created = change[0]
                    settled = True
                    break
                changes.append(change)
                if change.at <= since:
                    settled = True
                    break
            marker = actions[-1].get("request_id") if actions and isinstance(actions[-1], dict) else None
            if settled or not paged or len(actions) < limit or not marker:
                break
            params["marker"] = marker
        changes.reverse()
        first = created or StateChange(at=vm.created_at, state=VMState.RUNNING)
        return tuple([first] + [c for c in changes if c.at >= first.at])

    def image_in_use(self, image_id: str) -> Optional[bool]:
        """One request: any live server of any project booted from the image."""
        body = self.session.json(self.session.call("compute", "GET", "/servers", f"servers using image {image_id}",
                                                   retry=True,
                                                   params={"all_tenants": "True", "image": image_id, "limit": 1}),
                                 "servers")
        return bool(body.get("servers"))

    # -- floating IPs and volumes ---------------------------------------------------------------------
    def list_floating_ips(self, project_id: Optional[str] = None) -> Iterator[FloatingIP]:
        params = {"project_id": project_id} if project_id else {}
        try:
            for raw in self.session.pages("network", "/floatingips", params, "floatingips", "list floating IPs"):
                fip = self._checked(floating_ip_record, raw)
                if fip is not None:
                    yield fip
        except NotSupported:
            return

    def list_volumes(self, project_id: Optional[str] = None,
                     active_since: Optional[datetime] = None) -> Iterator[Volume]:
        """Live volumes (one paged pass, changed or not) + with ``active_since`` those deleted since then."""
        params: Dict[str, Any] = {"all_tenants": "True"}
        if project_id:
            params["project_id"] = project_id
        try:
            for raw in self.session.pages("block-storage", "/volumes/detail", params, "volumes", "list volumes",
                                          microversion=VOLUME_MICROVERSION):
                volume = self._checked(self._volume, raw, project_id)
                if volume is not None and volume.status != "deleted":
                    yield volume
            if active_since is None:
                return
            since = dict(params, **{"changes-since": iso_utc(active_since)})
            for raw in self.session.pages("block-storage", "/volumes/detail", since, "volumes",
                                          "list volumes deleted since " + iso_utc(active_since),
                                          microversion=VOLUME_MICROVERSION):
                if str(raw.get("status") or "") == "deleted":  # live ones were listed above
                    volume = self._checked(self._volume, raw, project_id)
                    if volume is not None:
                        yield volume
        except NotSupported:
            return

    def _volume(self, raw: Mapping[str, Any], project_id: Optional[str]) -> Volume:
        where = f"volume {raw.get('id')}"
        try:
            created = parse_time(raw["created_at"])
            updated = parse_time(raw["updated_at"]) if raw.get("updated_at") else None
            status = str(raw.get("status") or "")
            project = raw.get("os-vol-tenant-attr:tenant_id") or project_id or ""
            return Volume(id=str(raw["id"]), name=str(raw.get("name") or raw["id"]), project_id=str(project),
                          user_id=raw.get("user_id"), size_gb=int(raw["size"]), status=status, created_at=created,
                          deleted_at=updated if status == "deleted" else None, updated_at=updated)
        except KeyError as exc:
            raise BadCloudData(f"{where}: missing {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise BadCloudData(f"{where}: {exc}") from exc

    # -- images -------------------------------------------------------------------------------------------
    def _image(self, raw: Mapping[str, Any], members: Sequence[str] = ()) -> Image:
        where = f"image {raw.get('id')}"
        try:
            return Image(
                id=str(raw["id"]), name=str(raw.get("name") or ""), owner=raw.get("owner"),
                status=str(raw.get("status") or ""), visibility=str(raw.get("visibility") or "private"),
                disk_format=raw.get("disk_format"), container_format=raw.get("container_format"),
                size=raw.get("size"), checksum=raw.get("checksum"), min_ram_mb=int(raw.get("min_ram") or 0),
                min_disk_gb=int(raw.get("min_disk") or 0),
                created_at=parse_time(raw["created_at"]) if raw.get("created_at") else None,
                updated_at=parse_time(raw["updated_at"]) if raw.get("updated_at") else None,
                properties={str(k): str(v) for k, v in raw.items() if k not in IMAGE_CORE and v is not None},
                members=members)
        except KeyError as exc:
            raise BadCloudData(f"{where}: missing {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise BadCloudData(f"{where}: {exc}") from exc

    def _members(self, raw: Mapping[str, Any]) -> Sequence[str]:
        """A shared image's accepted members, read when first used (:class:`LazyMembers`)."""
        if raw.get("visibility") != "shared":
            return ()
        image_id = str(raw["id"])
        return LazyMembers(lambda: self._read_members(image_id))

    def _read_members(self, image_id: str) -> Tuple[str, ...]:
        try:
            body = self.session.json(self.session.call("image", "GET", f"/images/{image_id}/members",
                                                       f"members of image {image_id}", retry=True), "members")
        except NotFound:
            return ()  # deleted since it was listed
        members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(members, list):
            raise BadCloudData(f"image {image_id}: its member list has no 'members' list")
        return tuple(str(m["member_id"]) for m in members
                     if isinstance(m, dict) and m.get("member_id") and m.get("status") == "accepted")

    def list_images(self, owner: Optional[str] = None) -> Iterator[Image]:
        """Images (paged).  No request per image: a shared image's members are read (one request)
        only when a caller first uses ``Image.members``.

        Glance cannot list the images shared with a given project for admin credentials (its
        ``member_status``/``visibility=shared`` filters apply to the token's own project, and
        not at all to admins), so each shared image whose members matter costs one request.
        """
        params = {"owner": owner} if owner else {}
        for raw in self.session.pages("image", "/images", params, "images", "list images"):
            image = self._checked(self._image, raw, self._members(raw))
            if image is not None:
                yield image

    def get_image(self, image_id: str) -> Image:
        raw = self.session.json(self.session.call("image", "GET", f"/images/{image_id}", f"image {image_id}",
                                                  retry=True), "image")
        return self._image(raw, self._members(raw))

    def create_image(self, spec: ImageSpec, data: BinaryIO) -> Image:
        """Create, stream the bytes, check size and MD5 against what was sent, share; delete it on failure."""
        body: Dict[str, Any] = {"name": glance_image_name(spec.name), "disk_format": spec.disk_format,
                                "container_format": spec.container_format, "visibility": spec.visibility,
                                "min_ram": spec.min_ram_mb, "min_disk": spec.min_disk_gb}
        if spec.owner:
            body["owner"] = spec.owner
        body.update({str(k): str(v) for k, v in spec.properties.items()})
        raw = self.session.json(self.session.call("image", "POST", "/images", f"create image {spec.name!r}", ok=(201,),
                                                  json=body), "create image")
        image_id = str(raw["id"])
        try:
            digest = hashlib.md5(usedforsecurity=False)
            sent = 0

            def chunks() -> Iterator[bytes]:
                nonlocal sent
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    digest.update(chunk)
                    sent += len(chunk)
                    yield chunk

            # a stream cannot be sent twice: no transparent retries of the upload
            self.session.call("image", "PUT", f"/images/{image_id}/file", f"upload image {image_id}", ok=(204,),
                              data=chunks(), headers={"Content-Type": "application/octet-stream"}, connect_retries=0,
                              status_code_retries=0)
            stored = self.get_image(image_id)
            if stored.status != "active" or stored.size != sent or (stored.checksum and
                                                                    stored.checksum != digest.hexdigest()):
                raise BadCloudData(f"image {image_id}: upload check failed (status {stored.status}, size "
                                   f"{stored.size} for {sent} bytes sent, checksum {stored.checksum})")
            for project in spec.share_with:
                self.share_image(image_id, project)
        except BaseException:
            with contextlib.suppress(CloudError):
                self.delete_image(image_id)
            raise
        return self.get_image(image_id)

    def share_image(self, image_id: str, project_id: str) -> None:
        """Make a shared image visible to a project (member added and accepted)."""
        try:
            self.session.call("image", "POST", f"/images/{image_id}/members", f"share image {image_id}",
                              json={"member": project_id})
        except CloudError as exc:
            if "already exists" not in str(exc) and "409" not in str(exc):
                raise
        self.session.call("image", "PUT", f"/images/{image_id}/members/{project_id}",
                          f"accept image {image_id} for {project_id}", json={"status": "accepted"})

    def unshare_image(self, image_id: str, project_id: str) -> None:
        self.session.call("image", "DELETE", f"/images/{image_id}/members/{project_id}",
                          f"unshare image {image_id}", ok=(204,))

    def iter_image_data(self, image_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The image's bytes, streamed."""
        response = self.session.call("image", "GET", f"/images/{image_id}/file", f"download image {image_id}",
                                     ok=(200, 204), stream=True)
        try:
            yield from response.iter_content(chunk_size)
        finally:
            response.close()

    def image_name(self, name: str, distinct: str = "") -> str:
        """``name`` clipped to what Glance takes (see :func:`glance_image_name`); names need not be unique."""
        return glance_image_name(name)

    def update_image(self, image_id: str, properties: Mapping[str, Optional[str]], name: Optional[str] = None,
                     visibility: Optional[str] = None) -> Image:
        current = self.get_image(image_id)
        ops: List[Dict[str, Any]] = []
        for key, value in properties.items():
            if key in IMAGE_CORE:
                raise CloudError(f"image {image_id}: {key} is not a custom property")
            if value is None:
                if key in current.properties:
                    ops.append({"op": "remove", "path": f"/{key}"})
            else:
                ops.append({"op": "add", "path": f"/{key}", "value": str(value)})
        if name is not None:
            ops.append({"op": "replace", "path": "/name", "value": glance_image_name(name)})
        if visibility is not None:
            ops.append({"op": "replace", "path": "/visibility", "value": visibility})
        if not ops:
            return current
        raw = self.session.json(self.session.call("image", "PATCH", f"/images/{image_id}", f"update image {image_id}",
                                                  json=ops, headers={"Content-Type": GLANCE_PATCH}), "update image")
        return self._image(raw, self._members(raw))

    def set_image_active(self, image_id: str, active: bool) -> None:
        action = "reactivate" if active else "deactivate"
        self.session.call("image", "POST", f"/images/{image_id}/actions/{action}", f"{action} image {image_id}",
                          ok=(204,))

    def delete_image(self, image_id: str) -> None:
        try:
            self.session.call("image", "DELETE", f"/images/{image_id}", f"delete image {image_id}", ok=(204,))
        except CloudAuthError as exc:
            raise CloudError(f"image {image_id} cannot be deleted (protected or not ours): {exc}") from exc

    # -- users ------------------------------------------------------------------------------------------
    def _list_keystone_users(self) -> List[Dict[str, Any]]:
        body = self.session.json(self.session.call("identity", "GET", "/users", "list users", retry=True), "list users")
        if body.get("truncated"):
            raise BadCloudData("list users: Keystone truncated the list (list_limit); raise list_limit")
        return list(body.get("users") or [])

    def _user_groups(self, user_id: Optional[str] = None) -> Dict[str, List[str]]:
        params = {"user.id": user_id} if user_id else {}
        body = self.session.json(self.session.call("identity", "GET", "/role_assignments", "list role assignments",
                                                   retry=True, params=params), "role assignments")
        groups: Dict[str, List[str]] = {}
        for a in body.get("role_assignments") or []:
            project = ((a.get("scope") or {}).get("project") or {}).get("id")
            user = (a.get("user") or {}).get("id")
            if project and user and project not in groups.setdefault(user, []):
                groups[user].append(project)
        return groups

    def list_users(self) -> Iterator[User]:
        """Keystone users with their projects (one users call and one role-assignments call)."""
        users = self._list_keystone_users()
        groups = self._user_groups()
        for raw in users:
            yield user_record(raw, groups.get(str(raw["id"]), []))

    def _get_user_raw(self, user_id: str) -> Dict[str, Any]:
        body = self.session.json(self.session.call("identity", "GET", f"/users/{user_id}", f"user {user_id}",
                                                   retry=True), "user")
        return dict(body.get("user") or {})

    def _role_id(self, name: str) -> str:
        if name not in self._role_ids:
            body = self.session.json(self.session.call("identity", "GET", "/roles", f"role {name}", retry=True,
                                                       params={"name": name}), "roles")
            roles = body.get("roles") or []
            if not roles:
                raise CloudError(f"Keystone has no role named {name!r} (cloud.openstack.member_role)")
            self._role_ids[name] = str(roles[0]["id"])
        return self._role_ids[name]

    def _user_body(self, spec: UserSpec, previous: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        body: Dict[str, Any] = {"name": spec.name, "enabled": spec.enabled, "email": spec.email,
                                "description": spec.display_name, MANAGED_ATTRIBUTE: True,
                                "x509_dns": list(spec.x509_dns), "ssh_keys": list(spec.ssh_keys)}
        for key in (previous or {}):
            if key not in USER_CORE and key not in spec.properties:
                body[key] = None  # a property no longer wanted
        body.update({str(k): str(v) for k, v in spec.properties.items()})
        return body

    def _set_groups(self, user_id: str, wanted: List[str], current: List[str]) -> None:
        role = self._role_id(self.settings.member_role)
        for project in wanted:
            if project not in current:
                self.session.call("identity", "PUT", f"/projects/{project}/users/{user_id}/roles/{role}",
                                  f"add user {user_id} to project {project}", ok=(200, 201, 204))
        for project in current:
            if project not in wanted:
                try:
                    self.session.call("identity", "DELETE", f"/projects/{project}/users/{user_id}/roles/{role}",
                                      f"remove user {user_id} from project {project}", ok=(204,))
                except NotFound:
                    pass  # another role than ours: not a membership we manage

    def create_user(self, spec: UserSpec) -> User:
        body = self._user_body(spec)
        body["domain_id"] = self.settings.users_domain
        raw = self.session.json(self.session.call("identity", "POST", "/users", f"create user {spec.name!r}", ok=(201,),
                                                  json={"user": body}), "create user")["user"]
        self._set_groups(str(raw["id"]), list(spec.groups), [])
        self._user_names = None
        return user_record(raw, list(spec.groups))

    def _managed(self, user_id: str) -> Dict[str, Any]:
        raw = self._get_user_raw(user_id)
        if not raw.get(MANAGED_ATTRIBUTE):
            raise CloudError(f"user {user_id} ({raw.get('name')}) is not managed by fedcloud-site "
                             f"(no {MANAGED_ATTRIBUTE} attribute): not touching it")
        return raw

    def update_user(self, user_id: str, spec: UserSpec) -> User:
        previous = self._managed(user_id)
        response = self.session.call("identity", "PATCH", f"/users/{user_id}", f"update user {user_id}",
                                     json={"user": self._user_body(spec, previous)})
        raw = self.session.json(response, "update user")["user"]
        current = self._user_groups(user_id).get(user_id, [])
        self._set_groups(user_id, list(spec.groups), current)
        return user_record(raw, list(spec.groups))

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        self._managed(user_id)
        self.session.call("identity", "PATCH", f"/users/{user_id}",
                          f"{'enable' if enabled else 'disable'} user {user_id}", json={"user": {"enabled": enabled}})

    def delete_user(self, user_id: str) -> None:
        self._managed(user_id)
        self.session.call("identity", "DELETE", f"/users/{user_id}", f"delete user {user_id}", ok=(204,))
        self._user_names = None


__all__ = ["NOVA_STATES", "OpenStackBackend", "OpenStackSettings", "MANAGED_ATTRIBUTE"]
