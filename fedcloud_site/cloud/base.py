"""The cloud backend interface every daemon uses.

A daemon never talks to a cloud API directly: it receives a :class:`CloudBackend`
and works with the plain, immutable records defined here.  All times are
timezone-aware UTC datetimes.  Backends translate their own vocabulary (Nova
server status, OpenNebula VM state codes, ...) into :class:`VMState` through an
explicit table in their module.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import (
    Any,
    BinaryIO,
    Callable,
    ClassVar,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from ..errors import FedcloudSiteError

T = TypeVar("T")


class CloudError(FedcloudSiteError):
    """Any failure talking to the cloud."""


class CloudUnavailable(CloudError):
    """The cloud API could not be reached or answered with a server error (retry later)."""


class CloudAuthError(CloudError):
    """Credentials were rejected."""


class NotFound(CloudError):
    """The named object does not exist."""


class NotSupported(CloudError):
    """The backend cannot do this operation."""


class BadCloudData(CloudError):
    """The cloud returned a record we cannot interpret; the message names the record."""


class VMState(str, enum.Enum):
    """Backend-neutral VM life-cycle state."""

    PENDING = "pending"  # being built / scheduled, not yet consuming resources
    RUNNING = "running"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPED = "stopped"  # shut off but still allocated
    ERROR = "error"
    DELETED = "deleted"  # gone for good (terminated, done)
    UNKNOWN = "unknown"


class Capability(str, enum.Enum):
    """Something a backend can do beyond the basics (projects, flavours, current VMs, images).

    Daemons name the capabilities their configuration needs (``DaemonSettings.needed_capabilities``);
    ``check-config`` refuses a configuration that needs one the configured backend does not declare.
    """

    USAGE = "usage"  # list_vms(active_since=...) includes VMs deleted since then, with their end times
    VOLUMES = "volumes"  # list_volumes: block storage (StAR storage records)
    FLOATING_IPS = "floating_ips"  # list_floating_ips: public IPs allocated to projects
    IMAGE_WRITE = "image_write"  # create/update/deactivate/delete images
    TEMPLATES = "templates"  # VM templates beside images (create/list/delete_template)
    DATASTORES = "datastores"  # ImageSpec.datastore chooses where image bytes go
    USERS = "users"  # list/create/update/disable/delete users and list groups

    @property
    def noun(self) -> str:
        """What a backend without this capability has not, for error messages."""
        return _CAPABILITY_NOUNS[self]


_CAPABILITY_NOUNS = {
    Capability.USAGE: "usage history (VMs deleted since a time)",
    Capability.VOLUMES: "volumes",
    Capability.FLOATING_IPS: "floating IPs",
    Capability.IMAGE_WRITE: "image writing",
    Capability.TEMPLATES: "VM templates",
    Capability.DATASTORES: "datastores to choose",
    Capability.USERS: "user directory",
}


@dataclass(frozen=True)
class MiddlewareFacts:
    """What a cloud middleware is, as GLUE 2 names it (facts about the software, not about the site)."""

    api_type: str  # e.g. OpenStack; part of the default endpoint id
    api_version: str  # default endpoint API version in the endpoint id, e.g. v3
    interface_name: str  # e.g. org.openstack.nova
    implementor: str
    implementation_name: str
    semantics: str  # URL of the API documentation
    product_name: str  # cloud manager product name


@dataclass(frozen=True)
class BackendDeclaration:
    """What a backend is and can do, read by the daemons instead of tables keyed by backend name."""

    label: str  # how the middleware is spelled for people and in the accounting CloudType
    middleware: Optional[MiddlewareFacts] = None  # None: the information provider needs cloudinfo.middleware
    capabilities: FrozenSet[Capability] = frozenset()
    protected_users: FrozenSet[str] = frozenset()  # local accounts user synchronisation never touches

    def lacks(self, needed: Iterable[Capability]) -> List[Capability]:
        """The capabilities of ``needed`` this backend does not declare, in declaration order."""
        wanted = set(needed)
        return [c for c in Capability if c in wanted and c not in self.capabilities]


@dataclass(frozen=True)
class Project:
    """A tenant / project (OpenStack) or group (OpenNebula)."""

    id: str
    name: str
    enabled: bool = True
    domain: Optional[str] = None  # domain NAME (Keystone "Default"; its id if the name cannot be read); None: none
    description: str = ""
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Accelerator:
    """GPU (or other accelerator) attached by a flavour."""

    type: str  # e.g. "GPU"
    vendor: str
    model: str
    count: int


@dataclass(frozen=True)
class Flavor:
    """An instance type (OpenStack flavour / OpenNebula template)."""

    id: str
    name: str
    vcpus: float
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int = 0
    public: bool = True
    extra_specs: Mapping[str, str] = field(default_factory=dict)
    accelerator: Optional[Accelerator] = None
    benchmark_type: Optional[str] = None
    benchmark_value: Optional[float] = None
    projects: Optional[Sequence[str]] = None  # a private flavour's allowed project ids; None: not told


class LazyMembers(Sequence[str]):
    """Project ids an image is shared with, read from the cloud the first time they are used.

    It behaves as a tuple (``in``, iteration, ``len``, indexing, ``==`` with any sequence,
    copies and pickles as a plain tuple).  The cloud is asked once; an error reading it
    (a :class:`CloudError`) is raised where the members are first used, and the next use
    asks again.
    """

    __slots__ = ("_load", "_items", "_lock")

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load: Optional[Callable[[], Iterable[str]]] = load
        self._items: Optional[Tuple[str, ...]] = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """True once the members have been read."""
        return self._items is not None

    def _get(self) -> Tuple[str, ...]:
        items = self._items
        if items is None:
            with self._lock:
                if self._items is None:
                    assert self._load is not None
                    self._items = tuple(self._load())
                    self._load = None  # the reader (and the backend it holds) is no longer needed
                items = self._items
        return items

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[str, Sequence[str]]:
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, item: object) -> bool:
        return item in self._get()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LazyMembers, tuple, list)):
            return self._get() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return repr(self._items) if self._items is not None else "LazyMembers(<not read yet>)"

    def __copy__(self) -> Tuple[str, ...]:
        return self._get()

    def __deepcopy__(self, memo: Any) -> Tuple[str, ...]:
        return self._get()

    def __reduce__(self) -> Any:
        return (tuple, (self._get(),))


@dataclass(frozen=True)
class Image:
    """A registered VM image.

    ``members`` (the projects a shared image is shared with, accepted memberships only) may be a
    :class:`LazyMembers`: read from the cloud when first used, so listings that never look at
    members cost no request per image.
    """

    id: str
    name: str
    owner: Optional[str] = None  # project id
    status: str = "active"
    visibility: str = "private"  # public / private / shared / community
    disk_format: Optional[str] = None
    container_format: Optional[str] = None
    size: Optional[int] = None
    checksum: Optional[str] = None
    min_ram_mb: int = 0
    min_disk_gb: int = 0
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    properties: Mapping[str, str] = field(default_factory=dict)
    members: Sequence[str] = ()  # project ids the image is shared with (may be read on first use)


@dataclass(frozen=True)
class ImageSpec:
    """What to register: a new image with its metadata."""

    name: str
    disk_format: str
    container_format: str = "bare"
    owner: Optional[str] = None  # project id / group that receives it
    visibility: str = "private"
    min_ram_mb: int = 0
    min_disk_gb: int = 0
    properties: Mapping[str, str] = field(default_factory=dict)
    share_with: Sequence[str] = ()  # project ids
    datastore: Optional[str] = None  # where the bytes go (OpenNebula: image datastore id); None: backend default


@dataclass(frozen=True)
class VMTemplate:
    """A VM template that boots registered images (OpenNebula ``VMTEMPLATE``)."""

    id: str
    name: str
    image_ids: Sequence[str] = ()  # images of its disks
    owner: Optional[str] = None  # project id / group
    visibility: str = "private"
    vcpus: float = 0
    ram_mb: int = 0
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateSpec:
    """What to create: a VM template booting one image, with the image's origin properties."""

    name: str
    image_id: str
    ram_mb: int
    vcpus: int = 1
    cpu: float = 1.0  # physical CPU share for all its VCPUs (OpenNebula CPU)
    arch: Optional[str] = None  # e.g. x86_64
    owner: Optional[str] = None
    visibility: str = "private"
    properties: Mapping[str, str] = field(default_factory=dict)
    #: backend-specific extra attributes: a string, or a mapping of strings for a vector attribute
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IPAddress:
    address: str
    version: int  # 4 or 6
    floating: bool = False  # public floating IP attached to the VM
    public: bool = False  # publicly routable (floating or public network)


@dataclass(frozen=True)
class RunPeriod:
    """A span of time in which the VM consumed resources (OpenNebula history record)."""

    start: datetime
    end: Optional[datetime]  # None: still running


@dataclass(frozen=True)
class StateChange:
    """From ``at`` on the VM was in ``state`` (an entry of the VM's state history, oldest first)."""

    at: datetime
    state: VMState


@dataclass(frozen=True)
class VM:
    """A virtual machine as the accounting extractor and the information provider see it."""

    id: str
    name: str
    project_id: str
    user_id: str
    state: VMState
    status: str  # backend's own status word, for logs
    created_at: datetime
    ended_at: Optional[datetime] = None  # set once the VM is DELETED
    updated_at: Optional[datetime] = None
    flavor_id: Optional[str] = None
    vcpus: float = 0
    ram_mb: int = 0
    disk_gb: int = 0
    image_id: Optional[str] = None
    host: Optional[str] = None
    user_name: Optional[str] = None  # global user name (X.509 DN or IdP id) when the backend has it
    addresses: Sequence[IPAddress] = ()
    run_periods: Optional[Sequence[RunPeriod]] = None  # exact running time when the backend records it
    #: False: the VM never ran (still building, failed before it booted): it used nothing.  None: the backend
    #: cannot tell (taken as having run since its creation)
    ever_ran: Optional[bool] = None
    first_ran_at: Optional[datetime] = None  # when it first ran, where the backend knows it
    #: the VM's state changes, oldest first, where the backend keeps them (see CloudBackend.vm_state_history);
    #: the first entry is when it first ran (or failed to); None: not read
    state_history: Optional[Sequence[StateChange]] = None
    suspended_seconds: Optional[int] = None
    cpu_seconds: Optional[int] = None
    network_in_bytes: Optional[int] = None
    network_out_bytes: Optional[int] = None
    accelerator: Optional[Accelerator] = None
    benchmark_type: Optional[str] = None
    benchmark_value: Optional[float] = None

    @property
    def public_ip_count(self) -> int:
        return len({a.address for a in self.addresses if a.public or a.floating})


@dataclass(frozen=True)
class FloatingIP:
    id: str
    address: str
    version: int
    project_id: str
    user_id: Optional[str] = None
    created_at: Optional[datetime] = None
    attached: bool = False


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    project_id: str
    user_id: Optional[str]
    size_gb: int
    status: str
    created_at: datetime
    deleted_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None


@dataclass(frozen=True)
class Capacity:
    """What the cloud manager knows of its size (None: not told)."""

    total_vcpus: Optional[int] = None
    used_vcpus: Optional[int] = None
    total_ram_mb: Optional[int] = None
    used_ram_mb: Optional[int] = None
    running_vms: Optional[int] = None
    hypervisor: Optional[str] = None
    hypervisor_version: Optional[str] = None


@dataclass(frozen=True)
class Quota:
    """Per-project limits (None: unlimited or unknown)."""

    instances: Optional[int] = None
    cores: Optional[int] = None
    ram_mb: Optional[int] = None


@dataclass(frozen=True)
class User:
    """A local cloud user."""

    id: str
    name: str
    email: Optional[str] = None
    display_name: Optional[str] = None
    enabled: bool = True
    groups: Sequence[str] = ()  # group / project ids
    x509_dns: Sequence[str] = ()
    ssh_keys: Sequence[str] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    quota: Optional[Quota] = None  # per-user limits, where the backend keeps and reports them


@dataclass(frozen=True)
class UserSpec:
    """Desired state of a user we manage."""

    name: str
    groups: Sequence[str]
    email: Optional[str] = None
    display_name: Optional[str] = None
    enabled: bool = True
    x509_dns: Sequence[str] = ()
    ssh_keys: Sequence[str] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    quota: Optional[Quota] = None  # per-user limits; None leaves the backend's default / current limits


@dataclass(frozen=True)
class Group:
    id: str
    name: str


class CloudBackend(abc.ABC):
    """The operations daemons need from a cloud.

    Listing methods return iterators so that backends can page through large
    collections without loading them at once.  Write methods that a backend
    cannot perform raise :class:`NotSupported`.
    """

    #: entry-point name of the backend ("openstack", "opennebula", "static")
    name: str = "abstract"

    #: label, GLUE facts, capabilities and protected users (every backend declares its own)
    declaration: ClassVar[BackendDeclaration] = BackendDeclaration(label="abstract")

    #: how ``list_vms(project_id)`` finds one project's VMs: True when the cloud filters them (the cost
    #: follows that project's VMs), False when the backend reads every VM and filters itself (listing all
    #: projects at once then costs no more than listing one)
    filters_vms_by_project: bool = True

    #: set by a caller that wants listings to skip records they cannot interpret (each error names
    #: its record) instead of failing the whole listing; None: listings raise BadCloudData
    on_bad_record: Optional[Callable[[BadCloudData], None]] = None

    def bad_record(self, error: BadCloudData) -> None:
        """A listed record cannot be interpreted: raise ``error``, or hand it to ``on_bad_record`` and go on."""
        if self.on_bad_record is None:
            raise error
        self.on_bad_record(error)

    @contextlib.contextmanager
    def skipping_bad_records(self, handler: Callable[[BadCloudData], None]) -> Iterator[None]:
        """Within the block, records this backend cannot read go to ``handler`` and listings go on."""
        previous = self.on_bad_record
        self.on_bad_record = handler
        try:
            yield
        finally:
            self.on_bad_record = previous

    def _checked(self, convert: Callable[..., T], *args: Any) -> Optional[T]:
        """``convert(*args)``, or None when it is bad data that ``on_bad_record`` takes (else it raises)."""
        try:
            return convert(*args)
        except BadCloudData as exc:
            self.bad_record(exc)
            return None

    # -- projects, flavours, capacity -------------------------------------------------
    @abc.abstractmethod
    def list_projects(self) -> Iterator[Project]:
        """All projects (tenants / groups) the configured credentials can see."""

    @abc.abstractmethod
    def list_flavors(self) -> Iterator[Flavor]:
        """All instance types, with GPU and benchmark properties decoded."""

    def capacity(self) -> Capacity:
        """Totals of the cloud manager, where the backend tells them."""
        return Capacity()

    def quota(self, project_id: str) -> Quota:
        """Limits of one project, where the backend tells them."""
        return Quota()

    # -- VMs and usage ------------------------------------------------------------------
    @abc.abstractmethod
    def list_vms(self, project_id: Optional[str] = None, active_since: Optional[datetime] = None) -> Iterator[VM]:
        """VMs of a project (all projects if None).

        Without ``active_since`` only VMs that currently exist (not deleted) are
        returned.  With it, VMs that were alive at any time since then are returned
        too, including those deleted after ``active_since``.
        """

    def vm_state_history(self, vm: VM, since: datetime) -> Optional[Sequence[StateChange]]:
        """The VM's state changes, enough to know its state at any instant from ``since`` on: every change
        after ``since`` and the last one before it (oldest first).  None: the backend keeps no such history.

        Costs requests (Nova: the server's instance actions), so callers ask only for VMs whose state may
        have changed since an instant they need.  NotFound when the VM is gone from the backend."""
        return None

    def list_floating_ips(self, project_id: Optional[str] = None) -> Iterator[FloatingIP]:
        """Public IPs allocated to a project."""
        return iter(())

    def list_volumes(self, project_id: Optional[str] = None,
                     active_since: Optional[datetime] = None) -> Iterator[Volume]:
        """Block-storage volumes alive at any time since ``active_since``."""
        return iter(())

    # -- images ---------------------------------------------------------------------------
    @abc.abstractmethod
    def list_images(self, owner: Optional[str] = None) -> Iterator[Image]:
        """Images, optionally only those owned by a project."""

    def get_image(self, image_id: str) -> Image:
        for image in self.list_images():
            if image.id == image_id:
                return image
        raise NotFound(f"image {image_id} not found")

    def image_name(self, name: str, distinct: str = "") -> str:
        """The name to give a new image (and its template) called ``name``, as this cloud accepts it.

        ``distinct`` tells this image apart from others of the same ``name`` (e.g. an older version still
        registered); clouds that need unique names add it (OpenNebula: unique per owner), others ignore it.
        """
        return name

    def create_image(self, spec: ImageSpec, data: BinaryIO) -> Image:
        """Register an image and upload its bytes from ``data`` (a readable stream)."""
        raise NotSupported(f"{self.name} backend cannot create images")

    def update_image(self, image_id: str, properties: Mapping[str, Optional[str]], name: Optional[str] = None,
                     visibility: Optional[str] = None) -> Image:
        """Set (value str) or remove (value None) image properties."""
        raise NotSupported(f"{self.name} backend cannot update images")

    def set_image_active(self, image_id: str, active: bool) -> None:
        """Deactivate (hide from new VMs) or reactivate an image."""
        raise NotSupported(f"{self.name} backend cannot deactivate images")

    def delete_image(self, image_id: str) -> None:
        raise NotSupported(f"{self.name} backend cannot delete images")

    def image_in_use(self, image_id: str) -> Optional[bool]:
        """True if VMs still use the image; None if the backend cannot tell."""
        for vm in self.list_vms():
            if vm.image_id == image_id and vm.state is not VMState.DELETED:
                return True
        return False

    # -- VM templates (clouds whose users start VMs from templates: OpenNebula) ---------------------
    def create_template(self, spec: TemplateSpec) -> VMTemplate:
        """Create a VM template booting ``spec.image_id``, owned and shared like an image."""
        raise NotSupported(f"{self.name} backend cannot create VM templates")

    def list_templates(self) -> Iterator[VMTemplate]:
        """All VM templates the credentials can see."""
        raise NotSupported(f"{self.name} backend has no VM templates")

    def delete_template(self, template_id: str) -> None:
        """Delete a VM template (never the images it uses)."""
        raise NotSupported(f"{self.name} backend cannot delete VM templates")

    # -- users and groups (Perun sync) ----------------------------------------------------
    def list_groups(self) -> Iterator[Group]:
        raise NotSupported(f"{self.name} backend has no user groups")

    def list_users(self) -> Iterator[User]:
        raise NotSupported(f"{self.name} backend cannot list users")

    def create_user(self, spec: UserSpec) -> User:
        raise NotSupported(f"{self.name} backend cannot create users")

    def update_user(self, user_id: str, spec: UserSpec) -> User:
        """Make the user match ``spec`` (groups, e-mail, DNs, keys, properties, enabled)."""
        raise NotSupported(f"{self.name} backend cannot update users")

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        raise NotSupported(f"{self.name} backend cannot disable users")

    def delete_user(self, user_id: str) -> None:
        raise NotSupported(f"{self.name} backend cannot delete users")

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections."""

    def request_count(self) -> Mapping[str, Any]:
        """Counters of API calls made (for run summaries and benchmarks)."""
        return {}
