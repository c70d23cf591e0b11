"""The simulated OpenStack cloud's data: Keystone, Nova, Glance, Neutron and Cinder records.

:class:`CloudData` holds plain mutable records and a controllable clock (``now``),
so that tests can move VMs through their life cycle (boot, suspend, resume,
delete, cross a month boundary) between runs of the code under test.  The API
modules render these records in each service's wire format.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Set, Tuple

#: Nova server status -> (vm_state, power_state code)
NOVA_STATUS_STATES: Dict[str, Tuple[str, int]] = {
    "ACTIVE": ("active", 1),
    "BUILD": ("building", 0),
    "REBOOT": ("active", 1),
    "HARD_REBOOT": ("active", 1),
    "MIGRATING": ("active", 1),
    "RESIZE": ("active", 1),
    "VERIFY_RESIZE": ("resized", 1),
    "RESCUE": ("rescued", 1),
    "PAUSED": ("paused", 3),
    "SUSPENDED": ("suspended", 7),
    "SHUTOFF": ("stopped", 4),
    "SHELVED": ("shelved", 4),
    "SHELVED_OFFLOADED": ("shelved_offloaded", 4),
    "SOFT_DELETED": ("soft-delete", 4),
    "ERROR": ("error", 0),
    "DELETED": ("deleted", 0),
    "UNKNOWN": ("", 0),
}

#: Keystone user options the real service accepts (others are a 400 error)
KEYSTONE_USER_OPTIONS = frozenset({
    "ignore_change_password_upon_first_use", "ignore_password_expiry", "ignore_lockout_failure_attempts",
    "lock_password", "multi_factor_auth_enabled", "multi_factor_auth_rules", "ignore_user_inactivity",
})


@dataclass
class SimDomain:
    id: str
    name: str
    description: str = ""
    enabled: bool = True


@dataclass
class SimProject:
    id: str
    name: str
    domain_id: str = "default"
    description: str = ""
    enabled: bool = True
    parent_id: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)  # custom attributes, returned as top-level keys


@dataclass
class SimUser:
    id: str
    name: str
    domain_id: str = "default"
    enabled: bool = True
    password: Optional[str] = None
    email: Optional[str] = None
    description: Optional[str] = None
    default_project_id: Optional[str] = None
    options: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)  # custom attributes, returned as top-level keys


@dataclass
class SimRole:
    id: str
    name: str


@dataclass(frozen=True)
class SimAssignment:
    """A role of a user on a project, a domain or the system (scope_id "all")."""

    user_id: str
    scope: str  # "project", "domain" or "system"
    scope_id: str
    role_id: str


@dataclass
class SimAppCredential:
    id: str
    secret: str
    user_id: str
    project_id: str
    name: str = "app-cred"


@dataclass
class SimFlavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int = 0
    swap: int = 0
    is_public: bool = True
    description: Optional[str] = None
    extra_specs: Dict[str, str] = field(default_factory=dict)
    access: Set[str] = field(default_factory=set)  # projects allowed to use a private flavour


@dataclass
class SimAddress:
    network: str
    addr: str
    version: int = 4
    type: str = "fixed"  # "fixed" or "floating"
    mac: str = "fa:16:3e:00:00:01"


@dataclass
class SimInstanceAction:
    """A Nova instance action (``os-instance-actions``): what was asked, when, and whether it failed."""

    action: str  # create, stop, start, suspend, resume, pause, unpause, shelve, unshelve, reboot, delete, ...
    request_id: str
    user_id: str
    project_id: str
    start_time: datetime
    updated_at: datetime  # when its last event ended (the action's end)
    message: Optional[str] = None  # "Error" when it failed


#: Nova status a server is moved to -> the instance action that does it, by the status it leaves
STATUS_ACTIONS: Dict[str, Dict[str, str]] = {
    "ACTIVE": {"SHUTOFF": "start", "SUSPENDED": "resume", "PAUSED": "unpause", "SHELVED": "unshelve",
               "SHELVED_OFFLOADED": "unshelve", "RESCUE": "unrescue", "SOFT_DELETED": "restore", "*": "reboot"},
    "SHUTOFF": {"*": "stop"}, "SUSPENDED": {"*": "suspend"}, "PAUSED": {"*": "pause"},
    "SHELVED": {"*": "shelve"}, "SHELVED_OFFLOADED": {"*": "shelveOffload"}, "RESCUE": {"*": "rescue"},
    "REBOOT": {"*": "reboot"}, "HARD_REBOOT": {"*": "reboot"}, "RESIZE": {"*": "resize"},
    "VERIFY_RESIZE": {"*": "resize"}, "REVERT_RESIZE": {"*": "revertResize"}, "MIGRATING": {"*": "live-migration"},
    "REBUILD": {"*": "rebuild"}, "PASSWORD": {"*": "changePassword"}, "SOFT_DELETED": {"*": "delete"},
}


@dataclass
class SimServer:
    id: str
    name: str
    project_id: str
    user_id: str
    flavor: Dict[str, Any]  # snapshot taken at boot: id, name, vcpus, ram, disk, ephemeral, swap, extra_specs
    created: datetime
    updated: datetime
    status: str = "ACTIVE"
    task_state: Optional[str] = None
    launched_at: Optional[datetime] = None
    terminated_at: Optional[datetime] = None
    image_id: Optional[str] = None  # None: booted from volume
    host: Optional[str] = "compute-01"
    availability_zone: str = "nova"
    addresses: List[SimAddress] = field(default_factory=list)
    key_name: Optional[str] = None
    metadata: Dict[str, str] = field(default_factory=dict)
    tags: List[str] = field(default_factory=list)
    description: Optional[str] = None
    locked: bool = False
    actions: List[SimInstanceAction] = field(default_factory=list)  # oldest first

    @property
    def deleted(self) -> bool:
        return self.status == "DELETED"

    @property
    def vm_state(self) -> str:
        return NOVA_STATUS_STATES.get(self.status, ("", 0))[0]

    @property
    def power_state(self) -> int:
        return NOVA_STATUS_STATES.get(self.status, ("", 0))[1]


@dataclass
class SimImageMember:
    member_id: str
    status: str  # pending, accepted, rejected
    created_at: datetime
    updated_at: datetime


@dataclass
class SimImage:
    id: str
    name: Optional[str]
    owner: Optional[str]
    created_at: datetime
    updated_at: datetime
    status: str = "active"
    visibility: str = "shared"
    protected: bool = False
    os_hidden: bool = False
    disk_format: Optional[str] = "qcow2"
    container_format: Optional[str] = "bare"
    size: Optional[int] = None
    virtual_size: Optional[int] = None
    checksum: Optional[str] = None
    os_hash_algo: Optional[str] = None
    os_hash_value: Optional[str] = None
    min_ram: int = 0
    min_disk: int = 0
    tags: List[str] = field(default_factory=list)
    properties: Dict[str, Any] = field(default_factory=dict)
    members: Dict[str, SimImageMember] = field(default_factory=dict)
    data_path: Optional[str] = None  # uploaded bytes live in this file


@dataclass
class SimNetwork:
    id: str
    name: str
    project_id: str
    external: bool = False
    shared: bool = False
    status: str = "ACTIVE"
    created_at: Optional[datetime] = None


@dataclass
class SimFloatingIP:
    id: str
    address: str
    project_id: str
    network_id: str
    created_at: datetime
    updated_at: datetime
    port_id: Optional[str] = None
    fixed_ip: Optional[str] = None
    router_id: Optional[str] = None
    description: str = ""

    @property
    def status(self) -> str:
        return "ACTIVE" if self.port_id else "DOWN"


@dataclass
class SimVolume:
    id: str
    name: str
    project_id: str
    user_id: str
    size: int
    created_at: datetime
    updated_at: datetime
    status: str = "available"
    deleted_at: Optional[datetime] = None
    attached_to: Optional[str] = None  # server id
    volume_type: str = "__DEFAULT__"
    bootable: bool = False
    description: Optional[str] = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass
class SimHypervisor:
    id: str
    hostname: str
    vcpus: int
    memory_mb: int
    local_gb: int
    hypervisor_type: str = "QEMU"
    hypervisor_version: int = 8002000
    host_ip: str = "192.0.2.10"
    state: str = "up"
    status: str = "enabled"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class CloudData:
    """Everything the simulated cloud knows, plus its clock.

    ``now`` is fixed when given (and moved with :meth:`set_now` / :meth:`advance`);
    otherwise the real UTC time is used.  Every change bumps :attr:`version`
    (used by the API modules to cache sorted listings).
    """

    def __init__(self, now: Optional[datetime] = None, region: str = "RegionOne") -> None:
        self.region = region
        self._now: Optional[datetime] = _utc(now) if now is not None else None
        self.lock = threading.RLock()
        self.version = 0
        self.domains: Dict[str, SimDomain] = {"default": SimDomain("default", "Default", "The default domain")}
        self.projects: Dict[str, SimProject] = {}
        self.users: Dict[str, SimUser] = {}
        self.roles: Dict[str, SimRole] = {}
        self.assignments: Set[SimAssignment] = set()
        self.app_credentials: Dict[str, SimAppCredential] = {}
        self.flavors: Dict[str, SimFlavor] = {}
        self.servers: Dict[str, SimServer] = {}
        self.images: Dict[str, SimImage] = {}
        self.networks: Dict[str, SimNetwork] = {}
        self.floating_ips: Dict[str, SimFloatingIP] = {}
        self.volumes: Dict[str, SimVolume] = {}
        self.hypervisors: Dict[str, SimHypervisor] = {}
        self.quotas: Dict[str, Dict[str, int]] = {}
        self._id_counter = 0
        for name in ("admin", "member", "reader"):
            self.roles[name] = SimRole(self._uuid_hex(f"role-{name}"), name)

    # -- clock ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The simulated current time (aware UTC)."""
        if self._now is not None:
            return self._now
        return datetime.now(timezone.utc)

    def set_now(self, moment: Optional[datetime]) -> None:
        """Fix the clock at ``moment`` (None: follow the real clock)."""
        self._now = _utc(moment) if moment is not None else None

    def advance(self, **delta: float) -> datetime:
        """Move a fixed clock forward, e.g. ``advance(days=2)``; returns the new now."""
        self._now = self.now() + timedelta(**delta)
        return self._now

    def touch(self) -> None:
        self.version += 1

    # -- ids -----------------------------------------------------------------------------------
    @staticmethod
    def _uuid_hex(seed: str) -> str:
        return hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()

    def new_id(self, kind: str = "id") -> str:
        """A fresh UUID (deterministic sequence, so runs are reproducible)."""
        with self.lock:
            self._id_counter += 1
            digest = hashlib.sha256(f"{kind}-{self._id_counter}-{len(self.servers)}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    # -- Keystone --------------------------------------------------------------------------------
    def role_id(self, name: str) -> str:
        return self.roles[name].id

    def add_domain(self, name: str, id: Optional[str] = None, description: str = "") -> SimDomain:
        with self.lock:
            domain = SimDomain(id=id or self._uuid_hex(f"domain-{name}"), name=name, description=description)
            self.domains[domain.id] = domain
            self.touch()
            return domain

    def add_project(self, name: str, id: Optional[str] = None, **kwargs: Any) -> SimProject:
        with self.lock:
            project = SimProject(id=id or self._uuid_hex(f"project-{name}"), name=name, **kwargs)
            self.projects[project.id] = project
            self.touch()
            return project

    def add_user(self, name: str, id: Optional[str] = None, password: Optional[str] = None,
                 projects: Tuple[str, ...] = (), role: str = "member", **kwargs: Any) -> SimUser:
        with self.lock:
            user = SimUser(id=id or self._uuid_hex(f"user-{name}"), name=name, password=password, **kwargs)
            self.users[user.id] = user
            for project_id in projects:
                self.assignments.add(SimAssignment(user.id, "project", project_id, self.role_id(role)))
            self.touch()
            return user

    def grant(self, user_id: str, role: str, project_id: Optional[str] = None, system: bool = False,
              domain_id: Optional[str] = None) -> None:
        with self.lock:
            if system:
                self.assignments.add(SimAssignment(user_id, "system", "all", self.role_id(role)))
            elif domain_id is not None:
                self.assignments.add(SimAssignment(user_id, "domain", domain_id, self.role_id(role)))
            elif project_id is not None:
                self.assignments.add(SimAssignment(user_id, "project", project_id, self.role_id(role)))
            self.touch()

    def user_roles(self, user_id: str, scope: str, scope_id: str) -> List[SimRole]:
        ids = {a.role_id for a in self.assignments if a.user_id == user_id and a.scope == scope
               and a.scope_id == scope_id}
        return [r for r in self.roles.values() if r.id in ids]

    def add_app_credential(self, user_id: str, project_id: str, secret: str, id: Optional[str] = None,
                           name: str = "app-cred") -> SimAppCredential:
        cred = SimAppCredential(id or self._uuid_hex(f"appcred-{user_id}-{name}"), secret, user_id, project_id, name)
        self.app_credentials[cred.id] = cred
        return cred

    def find_user(self, name_or_id: str, domain_id: Optional[str] = None) -> Optional[SimUser]:
        user = self.users.get(name_or_id)
        if user is not None:
            return user
        for candidate in self.users.values():
            if candidate.name == name_or_id and (domain_id is None or candidate.domain_id == domain_id):
                return candidate
        return None

    def find_project(self, name_or_id: str, domain_id: Optional[str] = None) -> Optional[SimProject]:
        project = self.projects.get(name_or_id)
        if project is not None:
            return project
        for candidate in self.projects.values():
            if candidate.name == name_or_id and (domain_id is None or candidate.domain_id == domain_id):
                return candidate
        return None

    def find_domain(self, name_or_id: str) -> Optional[SimDomain]:
        domain = self.domains.get(name_or_id)
        if domain is not None:
            return domain
        return next((d for d in self.domains.values() if d.name == name_or_id), None)

    # -- Nova --------------------------------------------------------------------------------------
    def add_flavor(self, id: str, name: str, vcpus: int, ram: int, disk: int, **kwargs: Any) -> SimFlavor:
        with self.lock:
            flavor = SimFlavor(id=id, name=name, vcpus=vcpus, ram=ram, disk=disk, **kwargs)
            self.flavors[flavor.id] = flavor
            self.touch()
            return flavor

    def add_flavor_access(self, flavor_id: str, project_id: str) -> SimFlavor:
        """Let a project use a private flavour (Nova ``addTenantAccess``)."""
        with self.lock:
            flavor = self.flavors[flavor_id]
            flavor.access.add(project_id)
            self.touch()
            return flavor

    def remove_flavor_access(self, flavor_id: str, project_id: str) -> SimFlavor:
        with self.lock:
            flavor = self.flavors[flavor_id]
            flavor.access.discard(project_id)
            self.touch()
            return flavor

    @staticmethod
    def flavor_snapshot(flavor: SimFlavor) -> Dict[str, Any]:
        return {"id": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk,
                "ephemeral": flavor.ephemeral, "swap": flavor.swap, "extra_specs": dict(flavor.extra_specs)}

    def boot_server(self, project_id: str, user_id: str, flavor_id: str, image_id: Optional[str] = None,
                    name: Optional[str] = None, status: str = "ACTIVE", id: Optional[str] = None,
                    created: Optional[datetime] = None, host: Optional[str] = "compute-01",
                    addresses: Optional[List[SimAddress]] = None) -> SimServer:
        """A new server (``created`` defaults to now; launched at creation unless still building)."""
        with self.lock:
            flavor = self.flavors[flavor_id]
            when = _utc(created) if created is not None else self.now()
            server_id = id or self.new_id("server")
            server = SimServer(id=server_id, name=name or f"vm-{server_id[:8]}", project_id=project_id,
                               user_id=user_id, flavor=self.flavor_snapshot(flavor), created=when, updated=when,
                               status=status, image_id=image_id, host=host,
                               launched_at=None if status == "BUILD" else when, addresses=list(addresses or []))
            if status != "BUILD":  # the build ended: successfully, or in ERROR before the server ever ran
                self.add_action(server, "create", when, failed=status == "ERROR")
            self.servers[server.id] = server
            self.touch()
            return server

    def add_action(self, server: SimServer, action: str, when: Optional[datetime] = None,
                   failed: bool = False, started: Optional[datetime] = None) -> SimInstanceAction:
        """Record an instance action of ``server`` ended at ``when`` (default now), begun at ``started``."""
        with self.lock:
            end = _utc(when) if when is not None else self.now()
            begin = _utc(started) if started is not None else end
            entry = SimInstanceAction(action=action, request_id=self._request_id(server),
                                      user_id=server.user_id, project_id=server.project_id, start_time=begin,
                                      updated_at=end, message="Error" if failed else None)
            server.actions.append(entry)
            server.actions.sort(key=lambda a: a.start_time)
            return entry

    @staticmethod
    def _request_id(server: SimServer) -> str:
        """A request id of the server's next action (derived from it: other generated ids stay as they were)."""
        digest = hashlib.sha256(f"request-{server.id}-{len(server.actions)}".encode()).digest()
        return f"req-{uuid.UUID(bytes=digest[:16], version=4)}"

    def set_server_status(self, server_id: str, status: str) -> SimServer:
        """Move a server to a Nova status (ACTIVE, SUSPENDED, SHUTOFF, PAUSED, ERROR, ...)."""
        if status not in NOVA_STATUS_STATES:
            raise ValueError(f"unknown Nova status {status!r}")
        if status == "DELETED":
            return self.delete_server(server_id)
        with self.lock:
            server = self.servers[server_id]
            if server.deleted:
                raise ValueError(f"server {server_id} is deleted")
            previous, server.status = server.status, status
            server.updated = self.now()
            if previous == "BUILD":  # the build ends now, booted or failed
                self.add_action(server, "create", server.updated, failed=status == "ERROR", started=server.created)
            elif status in STATUS_ACTIONS and status != previous:
                choices = STATUS_ACTIONS[status]
                self.add_action(server, choices.get(previous, choices.get("*", "")), server.updated)
            if server.launched_at is None and status not in ("BUILD", "ERROR"):
                server.launched_at = server.updated
            self.touch()
            return server

    def delete_server(self, server_id: str) -> SimServer:
        with self.lock:
            server = self.servers[server_id]
            server.status = "DELETED"
            server.task_state = None
            server.updated = server.terminated_at = self.now()
            self.add_action(server, "delete", server.updated)
            for fip in self.floating_ips.values():
                if fip.port_id == server_id:
                    fip.port_id = fip.fixed_ip = None
                    fip.updated_at = server.updated
            self.touch()
            return server

    # -- Glance ---------------------------------------------------------------------------------------
    def add_image(self, name: Optional[str], owner: Optional[str], id: Optional[str] = None, **kwargs: Any) -> SimImage:
        with self.lock:
            when = kwargs.pop("created_at", None) or self.now()
            image = SimImage(id=id or self.new_id("image"), name=name, owner=owner, created_at=when,
                             updated_at=kwargs.pop("updated_at", None) or when, **kwargs)
            self.images[image.id] = image
            self.touch()
            return image

    # -- Neutron, Cinder -------------------------------------------------------------------------------
    def add_network(self, name: str, project_id: str, external: bool = False, id: Optional[str] = None,
                    shared: bool = False) -> SimNetwork:
        with self.lock:
            network = SimNetwork(id or self._uuid_hex(f"net-{name}-{project_id}"), name, project_id,
                                 external=external, shared=shared, created_at=self.now())
            self.networks[network.id] = network
            self.touch()
            return network

    def public_network(self) -> SimNetwork:
        for network in self.networks.values():
            if network.external:
                return network
        admin = next(iter(self.projects), "admin")
        return self.add_network("public", admin, external=True, shared=True)

    def add_floating_ip(self, address: str, project_id: str, server_id: Optional[str] = None,
                        created: Optional[datetime] = None, id: Optional[str] = None) -> SimFloatingIP:
        """A floating IP of ``project_id``, attached to ``server_id`` (listed in its addresses) when given."""
        with self.lock:
            when = _utc(created) if created is not None else self.now()
            fip = SimFloatingIP(id or self.new_id("fip"), address, project_id, self.public_network().id, when, when)
            if server_id is not None:
                server = self.servers[server_id]
                fixed = next((a.addr for a in server.addresses if a.type == "fixed" and a.version == 4), None)
                fip.port_id, fip.fixed_ip = server_id, fixed
                network = server.addresses[0].network if server.addresses else "private"
                server.addresses.append(SimAddress(network, address, 4, "floating"))
            self.floating_ips[fip.id] = fip
            self.touch()
            return fip

    def add_volume(self, name: str, project_id: str, user_id: str, size: int, created: Optional[datetime] = None,
                   id: Optional[str] = None, attached_to: Optional[str] = None) -> SimVolume:
        with self.lock:
            when = _utc(created) if created is not None else self.now()
            volume = SimVolume(id or self.new_id("volume"), name, project_id, user_id, size, when, when,
                               status="in-use" if attached_to else "available", attached_to=attached_to)
            self.volumes[volume.id] = volume
            self.touch()
            return volume

    def delete_volume(self, volume_id: str) -> SimVolume:
        with self.lock:
            volume = self.volumes[volume_id]
            volume.status = "deleted"
            volume.deleted_at = volume.updated_at = self.now()
            volume.attached_to = None
            self.touch()
            return volume

    def add_hypervisor(self, hostname: str, vcpus: int, memory_mb: int, local_gb: int = 1000,
                       **kwargs: Any) -> SimHypervisor:
        with self.lock:
            hypervisor = SimHypervisor(self._uuid_hex(f"hv-{hostname}"), hostname, vcpus, memory_mb, local_gb,
                                       **kwargs)
            self.hypervisors[hypervisor.id] = hypervisor
            self.touch()
            return hypervisor

    # -- views used by several services ------------------------------------------------------------------
    def live_servers_on(self, hostname: str) -> List[SimServer]:
        return [s for s in self.servers.values() if s.host == hostname and not s.deleted]
