"""The site as the information provider publishes it: one in-memory description.

:func:`build_model` reads the cloud through the backend plugin layer (projects,
flavours, images, VMs, quotas, capacity; works the same on every backend) and
adds what only the configuration knows (``site``, ``vos`` and the ``cloudinfo``
section).  Nothing is made up: a value neither source gives is left out.

Identifiers follow cloud-info-provider 1.x, so the GLUE 2.1 JSON keeps the IDs
the federation already knows: service ``<url>_cloud.compute``, manager
``<service>_manager``, endpoint ``<url>_<api type>_<api version>``, share
``<endpoint>_share_<vo>_<project id>``, mapping policy ``<share>_Policy``, access
policy ``<endpoint>_policy``, instance types and images by their cloud ID.

Bad records do not stop the others: a flavour without RAM or CPUs, an image
record the backend cannot read, a project no VO maps to are logged (naming the
record) and left out; an image without OS properties is published without
them (``UNKNOWN`` in the JSON, like cloud-info-provider) and logged.  An unreachable cloud (``CloudUnavailable``,
``CloudAuthError``) is raised to the caller, which keeps the last good output.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar

from ..cloud.base import (
    BadCloudData,
    Capacity,
    CloudBackend,
    CloudError,
    CloudUnavailable,
    Flavor,
    Image,
    NotSupported,
    Project,
    Quota,
    VMState,
)
from ..config import Config
from ..errors import FedcloudSiteError
from ..log import get_logger
from .settings import Settings

T = TypeVar("T")

UNKNOWN = "UNKNOWN"

#: image properties, first one set wins (Glance conventions of atrope/cloudkeeper and our image subscriber)
MARKETPLACE_PROPERTIES = ("vmcatcher_event_ad_mpuri", "marketplace", "ad:mpuri", "CLOUDKEEPER_APPLIANCE_MPURI")
OS_NAME_PROPERTIES = ("os_distro", "CLOUDKEEPER_APPLIANCE_OPERATING_SYSTEM")
OS_VERSION_PROPERTIES = ("os_version",)
OS_PLATFORM_PROPERTIES = ("architecture", "CLOUDKEEPER_APPLIANCE_ARCHITECTURE")
DESCRIPTION_PROPERTIES = ("vmcatcher_event_dc_description", "vmcatcher_event_dc_title",
                          "CLOUDKEEPER_APPLIANCE_DESCRIPTION", "CLOUDKEEPER_APPLIANCE_TITLE")
APPLIANCE_ATTRIBUTES = "APPLIANCE_ATTRIBUTES"

#: how many individual log lines one kind of problem gets per run before it is summarised
LOG_LIMIT = 20


class ModelError(FedcloudSiteError):
    """The configuration lacks what the provider needs (the message names the settings)."""


@dataclass(frozen=True)
class VMCounts:
    """VMs of a share or of the whole service, by GLUE state (halted = stopped, suspended = suspended)."""

    total: int = 0
    running: int = 0
    suspended: int = 0
    halted: int = 0

    def __add__(self, other: VMCounts) -> VMCounts:
        return VMCounts(self.total + other.total, self.running + other.running,
                        self.suspended + other.suspended, self.halted + other.halted)


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    site: str
    type: str
    quality_level: str
    capabilities: Tuple[str, ...]
    status_info: Optional[str]
    aup: Optional[str]
    complexity: str
    vms: Optional[VMCounts]
    other_info: Mapping[str, str]


@dataclass(frozen=True)
class Manager:
    id: str
    service_id: str
    name: str
    product_name: str
    product_version: Optional[str]
    hypervisor_name: Optional[str]
    hypervisor_version: Optional[str]
    total_cpus: Optional[int]
    total_ram_mb: Optional[int]
    used_cpus: Optional[int]
    used_ram_mb: Optional[int]
    running_vms: Optional[int]
    instance_max_cpu: Optional[int]
    instance_min_cpu: Optional[int]
    instance_max_ram: Optional[int]
    instance_min_ram: Optional[int]
    virtual_disk_formats: Tuple[str, ...]
    cpu_virtualization_type: Optional[str]
    network_virtualization_type: Optional[str]
    failover: Optional[bool]
    live_migration: Optional[bool]
    vm_backup_restore: Optional[bool]


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    url: str
    service_id: str
    api_type: str
    interface_name: str
    interface_version: Optional[str]
    authentication: Optional[str]
    implementor: Optional[str]
    implementation_name: Optional[str]
    implementation_version: Optional[str]
    semantics: Optional[str]
    technology: str
    quality_level: str
    serving_state: str
    health_state: str
    health_state_info: str
    capabilities: Tuple[str, ...]
    downtime_info: Optional[str]
    issuer_ca: Optional[str]
    trusted_cas: Tuple[str, ...]
    host_dn: Optional[str]


@dataclass(frozen=True)
class Share:
    id: str
    name: str
    description: str
    vo: str
    project_id: str
    project_name: str
    project_domain: Optional[str]
    sla: Optional[str]
    network_info: Optional[str]
    default_network_type: Optional[str]
    public_network_name: Optional[str]
    instance_max_cpu: Optional[int]
    instance_max_ram: Optional[int]
    instance_min_cpu: Optional[int]
    instance_min_ram: Optional[int]
    vms: Optional[VMCounts]
    max_vm: Optional[int]
    quotas: Mapping[str, int]
    policy_id: str

    @property
    def rule(self) -> str:
        return f"VO:{self.vo}"


@dataclass(frozen=True)
class Accelerator:
    id: str
    name: str
    type: str
    number: int
    vendor: str
    model: str


@dataclass(frozen=True)
class InstanceType:
    """A flavour, offered in the shares of the projects that may use it (public ones: every share)."""

    id: str
    ldif_id: str
    name: str
    cpu: int
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int
    public: bool
    accelerator: Optional[Accelerator]
    benchmark_type: Optional[str]
    benchmark_value: Optional[float]
    projects: Optional[Tuple[str, ...]] = None  # a private flavour's projects; None: every project

    def usable_by(self, project_id: str) -> bool:
        return self.projects is None or project_id in self.projects


@dataclass(frozen=True)
class CloudImage:
    id: str
    ldif_id: str
    name: str
    marketplace_url: Optional[str]
    os_name: Optional[str]  # None: unknown (the JSON says UNKNOWN, as cloud-info-provider does)
    os_version: Optional[str]
    os_platform: Optional[str]
    description: Optional[str]
    version: Optional[str]
    size_bytes: Optional[int]
    disk_format: Optional[str]
    min_ram_mb: int
    min_disk_gb: int
    other_info: Mapping[str, Any]
    share_ids: Tuple[str, ...]
    public: bool  # visible to every project (then share_ids are all shares)


@dataclass(frozen=True)
class AccessPolicy:
    id: str
    endpoint_id: str
    rules: Tuple[str, ...]


@dataclass
class SiteModel:
    """Everything one render publishes."""

    site: str
    created: datetime
    validity: int
    service: Service
    manager: Manager
    endpoint: Endpoint
    shares: List[Share]
    access_policy: AccessPolicy
    instance_types: List[InstanceType]
    images: List[CloudImage]
    # settings the writers need
    ldif_base: str
    instance_platform: str
    instance_os_family: str
    network_in: str
    network_out: str
    image_access_info: str
    problems: List[str] = field(default_factory=list)

    def instance_types_of(self, share: Share) -> List[InstanceType]:
        """The instance types the share's project may use."""
        return [t for t in self.instance_types if t.usable_by(share.project_id)]

    def shares_of(self, itype: InstanceType) -> List[str]:
        """IDs of the shares whose projects may use an instance type."""
        return [s.id for s in self.shares if itype.usable_by(s.project_id)]

    def counts(self) -> Dict[str, int]:
        """Numbers for the run summary."""
        return {"shares": len(self.shares), "instance_types": len(self.instance_types), "images": len(self.images),
                "problems": len(self.problems)}


# --------------------------------------------------------------------------- helpers


class _Problems:
    """Logs each problem (up to :data:`LOG_LIMIT` per kind, then a summary) and keeps them for the status file."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.items: List[str] = []
        self._per_kind: Counter[str] = Counter()
        self._seen: Set[str] = set()

    def report(self, kind: str, message: str, level: str = "warning", **context: Any) -> None:
        if message in self._seen:  # e.g. a bad flavour met again while the backend resolves VM sizes
            return
        self._seen.add(message)
        self.items.append(message)
        self._per_kind[kind] += 1
        if self._per_kind[kind] <= LOG_LIMIT:
            getattr(self.log, level)(message, problem=kind, **context)

    def summarise(self) -> None:
        for kind, count in sorted(self._per_kind.items()):
            if count > LOG_LIMIT:
                self.log.warning(f"{count - LOG_LIMIT} more problems of this kind not logged one by one",
                                 problem=kind, total=count)


def _attribute_form(name: str) -> str:
    """A property name as OpenNebula template attributes spell it (``ad:mpuri`` -> ``AD_MPURI``)."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def _first(properties: Mapping[str, str], names: Sequence[str]) -> Optional[str]:
    """The first property of ``names`` that is set (as written, or in OpenNebula attribute form)."""
    for name in names:
        value = properties.get(name) or properties.get(_attribute_form(name))
        if value:
            return value
    return None


def _listing(source: Callable[[], Iterable[T]], what: str, problems: _Problems) -> Iterator[T]:
    """Items of a backend listing; a BadCloudData that ends the listing is reported, the items so far kept."""
    try:
        yield from source()
    except BadCloudData as exc:
        problems.report("bad_record", f"{what}: listing stopped at a record the cloud returned that cannot be "
                                      f"read, later {what} are missing: {exc}", level="error")


def _whole_cpus(vcpus: float) -> int:
    return int(vcpus) if float(vcpus).is_integer() else int(math.ceil(vcpus))


def _max(values: Iterable[int]) -> Optional[int]:
    values = list(values)
    return max(values) if values else None


def _min(values: Iterable[int]) -> Optional[int]:
    values = list(values)
    return min(values) if values else None


# --------------------------------------------------------------------------- building


def build_model(config: Config, backend: CloudBackend, now: datetime, log: Any = None) -> SiteModel:
    """Read the cloud and the configuration into a :class:`SiteModel`.

    Raises :class:`ModelError` when settings are missing, and ``CloudUnavailable`` /
    ``CloudAuthError`` when the cloud cannot be read at all.
    """
    settings: Settings = config.section(Settings)
    missing = settings.missing()
    if missing:
        raise ModelError("; ".join(missing))
    log = log or get_logger("cloudinfo")
    problems = _Problems(log)
    try:
        with backend.skipping_bad_records(
                lambda exc: problems.report("bad_record", f"left out: {exc}", level="error")):
            return _build(config, settings, backend, now, problems)
    finally:
        problems.summarise()


def _build(config: Config, settings: Settings, backend: CloudBackend, now: datetime,
           problems: _Problems) -> SiteModel:
    site = config.site.name
    service_id = settings.compute_service_id
    endpoint_id = settings.endpoint_id
    manager_id = f"{service_id}_manager"

    projects = _shared_projects(config, backend, problems)
    instance_types = _instance_types(settings, backend, service_id, problems)
    vm_counts = _vm_counts(backend, {p.id for _, p in projects}, problems)

    if projects:  # a private flavour none of our projects may use is not ours to publish
        ours = {p.id for _, p in projects}
        instance_types = [t for t in instance_types if t.projects is None or ours.intersection(t.projects)]
    pairs = [(_share(config, vo, project, endpoint_id, [t for t in instance_types if t.usable_by(project.id)],
                     vm_counts, backend, problems), project)
             for vo, project in projects]
    pairs.sort(key=lambda pair: pair[0].id)
    shares = [share for share, _ in pairs]
    images = _images(settings, backend, service_id, pairs, problems)

    rules = tuple(sorted({s.rule for s in shares}))
    access_policy = AccessPolicy(id=f"{endpoint_id}_policy", endpoint_id=endpoint_id, rules=rules)
    total_vms: Optional[VMCounts] = None
    if vm_counts is not None:
        total_vms = VMCounts()
        for share in shares:
            total_vms = total_vms + (share.vms or VMCounts())

    gocdb_info = {"site_name": site}
    if config.site.gocdb_service_id:
        gocdb_info = {"gocdb_id": config.site.gocdb_service_id, "site_name": site}
    service = Service(
        id=service_id, name=f"Cloud Compute service at {site}", site=site, type="org.cloud.iaas",
        quality_level=config.site.production_level, capabilities=tuple(settings.service_capabilities),
        status_info=settings.status_info.format(site=site) if settings.status_info else None,
        aup=settings.service_aup, complexity=f"endpointType=1,share={len(shares)}", vms=total_vms,
        other_info=gocdb_info)
    manager = _manager(settings, backend, manager_id, service_id, instance_types, problems)
    endpoint = _endpoint(config, settings, endpoint_id, service_id, problems)
    if not shares:
        problems.report("no_shares", "no project is mapped to a VO: no shares are published (set vos.<vo>.projects "
                                     f"or the project property {config.cloud.vo_property})")
    return SiteModel(
        site=site, created=now, validity=int(settings.validity), service=service, manager=manager,
        endpoint=endpoint, shares=shares, access_policy=access_policy, instance_types=instance_types,
        images=images, ldif_base=settings.ldif_base, instance_platform=settings.instance_platform,
        instance_os_family=settings.instance_os_family, network_in=settings.network_in,
        network_out=settings.network_out, image_access_info=settings.image_access_info,
        problems=problems.items)


def _shared_projects(config: Config, backend: CloudBackend, problems: _Problems) -> List[Tuple[str, Project]]:
    """(VO, project) for each enabled project a VO maps to."""
    found: List[Tuple[str, Project]] = []
    seen_ids = set()
    seen_names = set()
    for project in _listing(backend.list_projects, "projects", problems):
        seen_ids.add(project.id)
        seen_names.add(project.name)
        vo = config.vo_of_project(project.id, project.name, project.properties)
        if vo is None:
            problems.log.info("project has no VO mapping: not published", project=project.id,
                              project_name=project.name)
            continue
        if not project.enabled:
            problems.report("disabled_project", f"project {project.id} ({project.name}) of VO {vo} is disabled: "
                                                "not published", project=project.id, vo=vo)
            continue
        found.append((vo, project))
    for vo, vo_settings in sorted(config.vos.items()):
        for ref in vo_settings.projects:
            if ref not in seen_ids and ref not in seen_names:
                problems.report("unknown_project", f"vos.{vo}.projects names {ref}, which the cloud does not have",
                                vo=vo, project=ref)
    return found


def _accelerator(flavor: Flavor) -> Optional[Accelerator]:
    specs = flavor.extra_specs
    if flavor.accelerator is not None:
        acc = flavor.accelerator
        if acc.count <= 0:
            return None
        return Accelerator(id=f"{flavor.id}_gpu", name=f"{flavor.name}_gpu", type=acc.type, number=acc.count,
                           vendor=acc.vendor, model=acc.model)
    number = specs.get("Accelerator:Number")
    if not number:
        return None
    try:
        count = int(number)
    except ValueError as exc:
        raise BadCloudData(f"flavour {flavor.id} ({flavor.name}): extra spec Accelerator:Number must be an "
                           f"integer, got {number!r}") from exc
    if count <= 0:
        return None
    return Accelerator(id=f"{flavor.id}_gpu", name=f"{flavor.name}_gpu", type=specs.get("Accelerator:Type") or "GPU",
                       number=count, vendor=specs.get("Accelerator:Vendor") or UNKNOWN,
                       model=specs.get("Accelerator:Model") or UNKNOWN)


def _instance_types(settings: Settings, backend: CloudBackend, service_id: str,
                    problems: _Problems) -> List[InstanceType]:
    result: Dict[str, InstanceType] = {}
    for flavor in _listing(backend.list_flavors, "flavours", problems):
        if settings.flavors == "public" and not flavor.public or settings.flavors == "private" and flavor.public:
            continue
        where = f"flavour {flavor.id} ({flavor.name})"
        if not flavor.ram_mb or flavor.ram_mb <= 0:
            problems.report("bad_flavor", f"{where} has no RAM: not published", flavor=flavor.id)
            continue
        if not flavor.vcpus or flavor.vcpus <= 0:
            problems.report("bad_flavor", f"{where} has no vCPUs: not published", flavor=flavor.id)
            continue
        try:
            accelerator = _accelerator(flavor)
        except BadCloudData as exc:
            problems.report("bad_flavor", f"{exc}: published without accelerator", flavor=flavor.id)
            accelerator = None
        if flavor.id in result:
            problems.report("duplicate", f"{where} is listed twice: the first is published", flavor=flavor.id)
            continue
        result[flavor.id] = InstanceType(
            id=flavor.id, ldif_id=f"{flavor.id}_{service_id}", name=flavor.name, cpu=_whole_cpus(flavor.vcpus),
            ram_mb=int(flavor.ram_mb), disk_gb=int(flavor.disk_gb or 0), ephemeral_gb=int(flavor.ephemeral_gb or 0),
            public=flavor.public, accelerator=accelerator, benchmark_type=flavor.benchmark_type,
            benchmark_value=flavor.benchmark_value,
            projects=None if flavor.public or flavor.projects is None else tuple(flavor.projects))
    return [result[k] for k in sorted(result)]


def _vm_counts(backend: CloudBackend, project_ids: Iterable[str],
               problems: _Problems) -> Optional[Dict[str, VMCounts]]:
    """VM counts per project (one listing of all VMs); None when the cloud cannot list them."""
    wanted = set(project_ids)
    raw: Dict[str, List[int]] = {p: [0, 0, 0, 0] for p in wanted}
    try:
        for vm in _listing(backend.list_vms, "VMs", problems):
            counts = raw.get(vm.project_id)
            if counts is None or vm.state is VMState.DELETED:
                continue
            counts[0] += 1
            if vm.state is VMState.STOPPED:
                counts[3] += 1
            elif vm.state is VMState.SUSPENDED:
                counts[2] += 1
            else:  # running, paused, pending, error: the VM holds its resources
                counts[1] += 1
    except NotSupported:
        return None
    return {p: VMCounts(*c) for p, c in raw.items()}


def _quota(backend: CloudBackend, project: Project, problems: _Problems) -> Quota:
    try:
        return backend.quota(project.id)
    except NotSupported:
        return Quota()
    except CloudUnavailable:
        raise
    except CloudError as exc:
        problems.report("quota", f"quota of project {project.id} ({project.name}) cannot be read: {exc}",
                        project=project.id)
        return Quota()


def _share(config: Config, vo: str, project: Project, endpoint_id: str, instance_types: List[InstanceType],
           vm_counts: Optional[Dict[str, VMCounts]], backend: CloudBackend, problems: _Problems) -> Share:
    vo_settings = config.vos.get(vo)
    share_id = f"{endpoint_id}_share_{vo}_{project.id}"
    quota = _quota(backend, project, problems)
    quotas = {k: v for k, v in (("instances", quota.instances), ("cores", quota.cores), ("ram", quota.ram_mb))
              if v is not None}
    cpus = [t.cpu for t in instance_types]
    rams = [t.ram_mb for t in instance_types]
    max_cpu = vo_settings.instance_max_cpu if vo_settings and vo_settings.instance_max_cpu else _max(cpus)
    max_ram = vo_settings.instance_max_ram_mb if vo_settings and vo_settings.instance_max_ram_mb else _max(rams)
    max_vm = vo_settings.max_vms if vo_settings and vo_settings.max_vms else quota.instances
    return Share(
        id=share_id, name=f"{vo} - {project.id} share",
        description=f"Share in service {endpoint_id} for VO {vo} (Project {project.id})", vo=vo,
        project_id=project.id, project_name=project.name, project_domain=project.domain,
        sla=vo_settings.sla if vo_settings else None,
        network_info=None,
        default_network_type=vo_settings.default_network_type if vo_settings else None,
        public_network_name=vo_settings.public_network_name if vo_settings else None,
        instance_max_cpu=max_cpu, instance_max_ram=max_ram, instance_min_cpu=_min(cpus), instance_min_ram=_min(rams),
        vms=vm_counts.get(project.id) if vm_counts is not None else None, max_vm=max_vm, quotas=quotas,
        policy_id=f"{share_id}_Policy")


def _appliance_attributes(image: Image, problems: _Problems) -> Dict[str, Any]:
    """OtherInfo of an image: the image list's appliance attributes (as cloud-info-provider publishes them)."""
    raw = _first(image.properties, (APPLIANCE_ATTRIBUTES,))
    if not raw:
        return {}
    try:
        attrs = json.loads(raw)
    except ValueError:
        problems.report("bad_image", f"image {image.id} ({image.name}): property {APPLIANCE_ATTRIBUTES} is not "
                                     "JSON: published without it", image=image.id)
        return {}
    if not isinstance(attrs, dict):
        return {}
    other: Dict[str, Any] = {}
    if "ad:base_mpuri" in attrs:
        other["base_mpuri"] = attrs["ad:base_mpuri"]
    other.update(attrs)
    return other


def _visible_to(image: Image, project_id: str) -> bool:
    if image.visibility == "public":
        return True
    if image.owner == project_id:
        return True
    return image.visibility == "shared" and project_id in image.members


def _images(settings: Settings, backend: CloudBackend, service_id: str, shares: List[Tuple[Share, Project]],
            problems: _Problems) -> List[CloudImage]:
    all_share_ids = tuple(s.id for s, _ in shares)  # one tuple shared by every public image
    result: Dict[str, CloudImage] = {}
    for image in _listing(backend.list_images, "images", problems):
        if image.status != "active":
            continue
        props = image.properties
        marketplace = _first(props, MARKETPLACE_PROPERTIES)
        if marketplace is None and settings.images == "registry":
            continue
        if image.visibility == "public":
            share_ids = all_share_ids
        else:
            share_ids = tuple(s.id for s, p in shares if _visible_to(image, p.id))
        if not share_ids:
            continue
        os_name = _first(props, OS_NAME_PROPERTIES)
        os_version = _first(props, OS_VERSION_PROPERTIES)
        os_platform = _first(props, OS_PLATFORM_PROPERTIES)
        if not (os_name and os_version and os_platform):
            absent = [n for n, v in (("os_distro", os_name), ("os_version", os_version),
                                     ("architecture", os_platform)) if not v]
            problems.report("image_os", f"image {image.id} ({image.name}) lacks {', '.join(absent)}: published "
                                        "with UNKNOWN OS fields", image=image.id)
        other_info = _appliance_attributes(image, problems)
        if image.id in result:
            problems.report("duplicate", f"image {image.id} ({image.name}) is listed twice: the first is published",
                            image=image.id)
            continue
        version = other_info.get("hv:version")
        result[image.id] = CloudImage(
            id=image.id, ldif_id=f"{image.id}_{service_id}", name=image.name, marketplace_url=marketplace,
            os_name=os_name, os_version=os_version, os_platform=os_platform,
            description=_first(props, DESCRIPTION_PROPERTIES),
            version=str(version) if version not in (None, "") else None, size_bytes=image.size,
            disk_format=image.disk_format, min_ram_mb=image.min_ram_mb, min_disk_gb=image.min_disk_gb,
            other_info=other_info, share_ids=share_ids, public=image.visibility == "public")
    return [result[k] for k in sorted(result)]


def _capacity(backend: CloudBackend, problems: _Problems) -> Capacity:
    try:
        return backend.capacity()
    except NotSupported:
        return Capacity()
    except CloudUnavailable:
        raise
    except CloudError as exc:
        problems.report("capacity", f"cloud capacity cannot be read: {exc}")
        return Capacity()


def _manager(settings: Settings, backend: CloudBackend, manager_id: str, service_id: str,
             instance_types: List[InstanceType], problems: _Problems) -> Manager:
    capacity = _capacity(backend, problems)
    cfg = settings.manager
    cpus = [t.cpu for t in instance_types]
    rams = [t.ram_mb for t in instance_types]
    return Manager(
        id=manager_id, service_id=service_id, name=f"Cloud Manager for {service_id}",
        product_name=cfg.product_name or settings.fact("product_name"),
        product_version=cfg.product_version,
        hypervisor_name=cfg.hypervisor or capacity.hypervisor,
        hypervisor_version=cfg.hypervisor_version or capacity.hypervisor_version,
        total_cpus=cfg.total_cpus if cfg.total_cpus is not None else capacity.total_vcpus,
        total_ram_mb=cfg.total_ram_mb if cfg.total_ram_mb is not None else capacity.total_ram_mb,
        used_cpus=capacity.used_vcpus, used_ram_mb=capacity.used_ram_mb, running_vms=capacity.running_vms,
        instance_max_cpu=_max(cpus), instance_min_cpu=_min(cpus), instance_max_ram=_max(rams),
        instance_min_ram=_min(rams), virtual_disk_formats=tuple(cfg.virtual_disk_formats),
        cpu_virtualization_type=cfg.cpu_virtualization_type,
        network_virtualization_type=cfg.network_virtualization_type, failover=cfg.failover,
        live_migration=cfg.live_migration, vm_backup_restore=cfg.vm_backup_restore)


def _certificate_dns(settings: Settings, problems: _Problems) -> Tuple[Optional[str], Optional[str]]:
    """(subject, issuer) of the configured endpoint certificate."""
    path = settings.endpoint.certificate
    if path is None:
        return None, None
    from ..x509 import X509Error, issuer_dn, load_certificate, subject_dn

    try:
        cert = load_certificate(path)
    except (OSError, X509Error, ValueError) as exc:
        problems.report("certificate", f"cloudinfo.endpoint.certificate {path} cannot be read: {exc}", level="error")
        return None, None
    return subject_dn(cert), issuer_dn(cert)


def _endpoint(config: Config, settings: Settings, endpoint_id: str, service_id: str,
              problems: _Problems) -> Endpoint:
    cfg = settings.endpoint
    subject, issuer = _certificate_dns(settings, problems)
    site = config.site.name
    return Endpoint(
        id=endpoint_id, name=f"Cloud computing endpoint for {endpoint_id}", url=settings.endpoint_url,
        service_id=service_id, api_type=settings.fact("api_type"),
        interface_name=cfg.interface_name or settings.fact("interface_name"),
        interface_version=cfg.interface_version, authentication=cfg.authentication,
        implementor=cfg.implementor or settings.fact("implementor"),
        implementation_name=cfg.implementation_name or settings.fact("implementation_name"),
        implementation_version=cfg.implementation_version, semantics=cfg.semantics or settings.fact("semantics"),
        technology=cfg.technology, quality_level=config.site.production_level, serving_state=cfg.serving_state,
        health_state="ok", health_state_info="Endpoint functioning properly", capabilities=tuple(cfg.capabilities),
        downtime_info=cfg.downtime_info.format(site=site) if cfg.downtime_info else None,
        issuer_ca=cfg.issuer_ca or issuer, trusted_cas=tuple(cfg.trusted_cas), host_dn=subject)
