"""The ``static`` backend: a site described in a YAML/JSON file, no cloud needed.

The description (``cloud.static.site_file``) holds projects, flavours, images,
VMs with their usage, volumes, floating IPs, users, groups and capacity.  Writes
(images registered, users synchronised) go to a JSON state file
(``cloud.static.state_file``) layered over the description, written atomically,
so that every daemon runs against it as against a real cloud.

File layout (all keys optional)::

    projects:   [{id, name, enabled, domain (its name, e.g. Default), description, properties}]
    flavors:    [{id, name, vcpus, ram, disk, ephemeral, public, extra_specs,
                  projects: [ids allowed to use a private flavour]}]
    images:     [{id, name, owner, status, visibility, disk_format, container_format,
                  size, checksum, created_at, updated_at, properties, members}]
    vms:        [{id, name, project, user, user_name, status, created, ended, updated,
                  flavor, vcpus, ram, disk, image, host, addresses: [{address, version, floating}],
                  run_periods: [[start, end]], launched, history: [[time, status]],
                  suspended_seconds, cpu_seconds, network_in, network_out}]
    volumes:    [{id, name, project, user, size, status, created, deleted}]
    floating_ips: [{id, address, version, project, user, created, attached}]
    groups:     [{id, name}]
    users:      [{id, name, email, display_name, enabled, groups, x509_dns, ssh_keys, properties,
                  quota: {instances, cores, ram_mb}}]
    capacity:   {total_vcpus, used_vcpus, total_ram_mb, used_ram_mb, hypervisor, hypervisor_version}
    quotas:     {<project id>: {instances, cores, ram_mb}}

``status`` of a VM is one of the :class:`~fedcloud_site.cloud.base.VMState` values.  Whether a VM
ever ran: ``launched`` (when it first ran; ``null``: never, e.g. it failed while building), else
``run_periods`` (none: never), else it is taken as having run since ``created``.  ``history`` lists
its state changes, oldest first, each ``[time, status]`` (the first: when it first ran).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar

import yaml

from ..atomic import atomic_write_text
from ..timeutil import parse_time, utcnow
from .base import (
    VM,
    BackendDeclaration,
    BadCloudData,
    Capability,
    Capacity,
    CloudBackend,
    Flavor,
    FloatingIP,
    Group,
    Image,
    ImageSpec,
    IPAddress,
    NotFound,
    Project,
    Quota,
    RunPeriod,
    StateChange,
    User,
    UserSpec,
    VMState,
    Volume,
)
from .flavor_specs import decode_flavor_specs

T = TypeVar("T")


@dataclass
class StaticSettings:
    """``cloud.static``: the site description and where writes are kept."""

    site_file: Optional[Path] = None
    state_file: Optional[Path] = None  # default: <site_file>.state.json beside it, or none (writes in memory)


def _load_description(path: Optional[Path]) -> Dict[str, Any]:
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadCloudData(f"{path}: cannot read static site description: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise BadCloudData(f"{path}: invalid site description: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadCloudData(f"{path}: expected a mapping at the top level")
    return data


def _time(value: Any, where: str) -> Optional[datetime]:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except (ValueError, OverflowError) as exc:
        raise BadCloudData(f"{where}: {exc}") from exc


def _required_time(value: Any, where: str) -> datetime:
    parsed = _time(value, where)
    if parsed is None:
        raise BadCloudData(f"{where}: missing time")
    return parsed


def _state(value: Any, where: str) -> VMState:
    try:
        return VMState(str(value).lower())
    except ValueError as cause:
        raise BadCloudData(f"{where}: status {value!r} is not one of "
                           f"{', '.join(s.value for s in VMState)}") from cause


def _history(value: Any, where: str) -> Optional[Tuple[StateChange, ...]]:
    """``[[time, status], ...]`` -> state changes (None when not given)."""
    if value is None:
        return None
    try:
        return tuple(StateChange(at=_required_time(entry[0], f"{where}[{n}]"), state=_state(entry[1], f"{where}[{n}]"))
                     for n, entry in enumerate(value))
    except (TypeError, IndexError, KeyError) as cause:
        raise BadCloudData(f"{where}: expected a list of [time, status] pairs") from cause


def _str_map(value: Any) -> Dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in (value or {}).items()}


def _quota(value: Any) -> Optional[Quota]:
    if not value:
        return None
    return Quota(instances=value.get("instances"), cores=value.get("cores"), ram_mb=value.get("ram_mb"))


class StaticBackend(CloudBackend):
    """A site described by a file (see module docs)."""

    name = "static"
    Settings = StaticSettings
    #: a file can describe any cloud: no GLUE facts of its own (cloudinfo.middleware says which cloud it is);
    #: both clouds' administrator accounts are protected, as on the sites it stands in for
    declaration = BackendDeclaration(
        label="static",
        capabilities=frozenset({Capability.USAGE, Capability.VOLUMES, Capability.FLOATING_IPS,
                                Capability.IMAGE_WRITE, Capability.USERS}),
        protected_users=frozenset({"oneadmin", "serveradmin", "admin"}))

    def __init__(self, settings: StaticSettings, config: Any = None) -> None:
        self.settings = settings
        self.site_file = settings.site_file
        self._data = _load_description(settings.site_file)
        if settings.state_file is not None:
            self.state_file: Optional[Path] = settings.state_file
        elif settings.site_file is not None:
            self.state_file = settings.site_file.with_name(settings.site_file.name + ".state.json")
        else:
            self.state_file = None
        self._state = self._load_state()
        self._calls: Dict[str, int] = {}

    # -- state file ---------------------------------------------------------------------
    def _load_state(self) -> Dict[str, Any]:
        empty: Dict[str, Any] = {"images": {}, "users": {}, "deleted_images": [], "deleted_users": []}
        if self.state_file is None or not self.state_file.exists():
            return empty
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadCloudData(f"{self.state_file}: unreadable static backend state: {exc}") from exc
        for key, value in empty.items():
            state.setdefault(key, value)
        return state  # type: ignore[no-any-return]

    def _save_state(self) -> None:
        if self.state_file is not None:
            atomic_write_text(self.state_file, json.dumps(self._state, indent=1, sort_keys=True, default=str))

    def _count(self, what: str) -> None:
        self._calls[what] = self._calls.get(what, 0) + 1

    def request_count(self) -> Mapping[str, Any]:
        return dict(self._calls)

    def _items(self, key: str) -> List[Dict[str, Any]]:
        items = self._data.get(key) or []
        if not isinstance(items, list):
            raise BadCloudData(f"{self.site_file}: {key}: expected a list")
        return items

    # -- projects, flavours ---------------------------------------------------------------
    def list_projects(self) -> Iterator[Project]:
        self._count("projects")
        for i, p in enumerate(self._items("projects")):
            where = f"{self.site_file}: projects[{i}]"
            if "id" not in p:
                self.bad_record(BadCloudData(f"{where}: missing id"))
                continue
            yield Project(id=str(p["id"]), name=str(p.get("name", p["id"])), enabled=bool(p.get("enabled", True)),
                          domain=p.get("domain"), description=str(p.get("description", "")),
                          properties=_str_map(p.get("properties")))

    def _read(self, where: str, convert: Callable[..., T], *args: Any) -> Optional[T]:
        """``convert(*args)``, or None when the record at ``where`` is bad (a missing key, a wrong value) and
        ``on_bad_record`` takes it (else it raises)."""
        try:
            return self._checked(convert, *args)
        except KeyError as exc:
            self.bad_record(BadCloudData(f"{where}: missing {exc.args[0]}"))
        except (TypeError, ValueError) as exc:
            self.bad_record(BadCloudData(f"{where}: {exc}"))
        return None

    @staticmethod
    def _flavor_from(f: Mapping[str, Any]) -> Flavor:
        specs = _str_map(f.get("extra_specs"))
        accelerator, bench_type, bench_value = decode_flavor_specs(specs)
        return Flavor(id=str(f["id"]), name=str(f.get("name", f["id"])), vcpus=float(f["vcpus"]),
                      ram_mb=int(f["ram"]), disk_gb=int(f.get("disk", 0)),
                      ephemeral_gb=int(f.get("ephemeral", 0)), public=bool(f.get("public", True)),
                      extra_specs=specs, accelerator=accelerator, benchmark_type=bench_type,
                      benchmark_value=bench_value,
                      projects=tuple(str(p) for p in f["projects"]) if "projects" in f else None)

    def list_flavors(self) -> Iterator[Flavor]:
        self._count("flavors")
        for i, f in enumerate(self._items("flavors")):
            flavor = self._read(f"{self.site_file}: flavors[{i}] ({f.get('id', '?')})", self._flavor_from, f)
            if flavor is not None:
                yield flavor

    def capacity(self) -> Capacity:
        c = self._data.get("capacity") or {}
        return Capacity(**{k: c.get(k) for k in ("total_vcpus", "used_vcpus", "total_ram_mb", "used_ram_mb",
                                                  "running_vms", "hypervisor", "hypervisor_version")})

    def quota(self, project_id: str) -> Quota:
        q = (self._data.get("quotas") or {}).get(project_id) or {}
        return Quota(instances=q.get("instances"), cores=q.get("cores"), ram_mb=q.get("ram_mb"))

    # -- VMs, IPs, volumes ----------------------------------------------------------------
    def _vm(self, i: int, v: Mapping[str, Any], flavors: Mapping[str, Flavor]) -> VM:
        where = f"{self.site_file}: vms[{i}] ({v.get('id', '?')})"
        state = _state(v.get("status", "running"), where)
        for key in ("id", "project", "user", "created"):
            if key not in v:
                raise BadCloudData(f"{where}: missing {key}")
        flavor = flavors.get(str(v["flavor"])) if v.get("flavor") is not None else None
        periods = v.get("run_periods")
        run_periods = None
        if periods is not None:
            run_periods = tuple(RunPeriod(_required_time(p[0], where), _time(p[1] if len(p) > 1 else None, where))
                                for p in periods)
        ever_ran: Optional[bool] = None
        first_ran: Optional[datetime] = None
        if "launched" in v:
            first_ran = _time(v["launched"], f"{where}: launched")
            ever_ran = first_ran is not None
        elif run_periods is not None:
            ever_ran = bool(run_periods)
            first_ran = min((p.start for p in run_periods), default=None)
        history = _history(v.get("history"), f"{where}: history")
        addresses = tuple(IPAddress(address=str(a["address"]), version=int(a.get("version", 4)),
                                    floating=bool(a.get("floating", False)), public=bool(a.get("public", False)))
                          for a in v.get("addresses") or [])
        try:
            return VM(
                id=str(v["id"]), name=str(v.get("name", v["id"])), project_id=str(v["project"]),
                user_id=str(v["user"]), state=state, status=state.value,
                created_at=_required_time(v["created"], where), ended_at=_time(v.get("ended"), where),
                updated_at=_time(v.get("updated"), where),
                flavor_id=str(v["flavor"]) if v.get("flavor") is not None else None,
                vcpus=float(v.get("vcpus", flavor.vcpus if flavor else 0)),
                ram_mb=int(v.get("ram", flavor.ram_mb if flavor else 0)),
                disk_gb=int(v.get("disk", (flavor.disk_gb + flavor.ephemeral_gb) if flavor else 0)),
                image_id=str(v["image"]) if v.get("image") is not None else None,
                host=v.get("host"), user_name=v.get("user_name"), addresses=addresses, run_periods=run_periods,
                ever_ran=ever_ran, first_ran_at=first_ran, state_history=history,
                suspended_seconds=v.get("suspended_seconds"), cpu_seconds=v.get("cpu_seconds"),
                network_in_bytes=v.get("network_in"), network_out_bytes=v.get("network_out"),
                accelerator=flavor.accelerator if flavor else None,
                benchmark_type=flavor.benchmark_type if flavor else None,
                benchmark_value=flavor.benchmark_value if flavor else None,
            )
        except (TypeError, ValueError) as exc:
            raise BadCloudData(f"{where}: {exc}") from exc

    def list_vms(self, project_id: Optional[str] = None, active_since: Optional[datetime] = None) -> Iterator[VM]:
        self._count("vms")
        flavors = {f.id: f for f in self.list_flavors()}
        for i, raw in enumerate(self._items("vms")):
            if project_id is not None and str(raw.get("project")) != project_id:
                continue
            vm = self._checked(self._vm, i, raw, flavors)
            if vm is None:
                continue
            if vm.state is VMState.DELETED:
                if active_since is None:
                    continue
                if vm.ended_at is not None and vm.ended_at < active_since:
                    continue
            yield vm

    def list_floating_ips(self, project_id: Optional[str] = None) -> Iterator[FloatingIP]:
        self._count("floating_ips")
        for i, f in enumerate(self._items("floating_ips")):
            if project_id is not None and str(f.get("project")) != project_id:
                continue
            where = f"{self.site_file}: floating_ips[{i}]"
            yield FloatingIP(id=str(f.get("id", f.get("address"))), address=str(f["address"]),
                             version=int(f.get("version", 4)), project_id=str(f["project"]),
                             user_id=f.get("user"), created_at=_time(f.get("created"), where),
                             attached=bool(f.get("attached", False)))

    def list_volumes(self, project_id: Optional[str] = None,
                     active_since: Optional[datetime] = None) -> Iterator[Volume]:
        self._count("volumes")
        for i, v in enumerate(self._items("volumes")):
            if project_id is not None and str(v.get("project")) != project_id:
                continue
            where = f"{self.site_file}: volumes[{i}] ({v.get('id', '?')})"
            deleted = _time(v.get("deleted"), where)
            if deleted is not None and (active_since is None or deleted < active_since):
                continue
            yield Volume(id=str(v["id"]), name=str(v.get("name", v["id"])), project_id=str(v["project"]),
                         user_id=v.get("user"), size_gb=int(v["size"]), status=str(v.get("status", "in-use")),
                         created_at=_required_time(v.get("created"), where), deleted_at=deleted,
                         updated_at=_time(v.get("updated"), where))

    # -- images ---------------------------------------------------------------------------
    def _image_from(self, raw: Mapping[str, Any], where: str) -> Image:
        return Image(
            id=str(raw["id"]), name=str(raw.get("name", raw["id"])), owner=raw.get("owner"),
            status=str(raw.get("status", "active")), visibility=str(raw.get("visibility", "private")),
            disk_format=raw.get("disk_format"), container_format=raw.get("container_format"),
            size=raw.get("size"), checksum=raw.get("checksum"), min_ram_mb=int(raw.get("min_ram_mb", 0)),
            min_disk_gb=int(raw.get("min_disk_gb", 0)), created_at=_time(raw.get("created_at"), where),
            updated_at=_time(raw.get("updated_at"), where), properties=_str_map(raw.get("properties")),
            members=tuple(raw.get("members") or ()),
        )

    def list_images(self, owner: Optional[str] = None) -> Iterator[Image]:
        self._count("images")
        deleted = set(self._state["deleted_images"])
        seen = set()
        for i, raw in enumerate(self._items("images")):
            image_id = str(raw.get("id"))
            seen.add(image_id)
            merged = dict(raw, **self._state["images"].get(image_id, {}))
            if image_id in deleted or (owner is not None and merged.get("owner") != owner):
                continue
            where = f"{self.site_file}: images[{i}] ({image_id})"
            image = self._read(where, self._image_from, merged, where)
            if image is not None:
                yield image
        for image_id, raw in sorted(self._state["images"].items()):
            if image_id in seen or image_id in deleted or (owner is not None and raw.get("owner") != owner):
                continue
            yield self._image_from(raw, f"{self.state_file}: images.{image_id}")

    def create_image(self, spec: ImageSpec, data: BinaryIO) -> Image:
        self._count("image_create")
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
        now = utcnow().isoformat()
        image_id = str(uuid.uuid4())
        raw = {"id": image_id, "name": spec.name, "owner": spec.owner, "status": "active",
               "visibility": spec.visibility, "disk_format": spec.disk_format,
               "container_format": spec.container_format, "size": size, "checksum": digest.hexdigest(),
               "min_ram_mb": spec.min_ram_mb, "min_disk_gb": spec.min_disk_gb, "created_at": now,
               "updated_at": now, "properties": dict(spec.properties), "members": list(spec.share_with)}
        self._state["images"][image_id] = raw
        self._save_state()
        return self._image_from(raw, image_id)

    def _image_overlay(self, image_id: str) -> Dict[str, Any]:
        current = self.get_image(image_id)
        overlay = self._state["images"].setdefault(image_id, {})
        if not overlay:
            overlay.update({k: v for k, v in asdict(current).items() if k not in ("created_at", "updated_at")})
            overlay["members"] = list(current.members)
        return overlay  # type: ignore[no-any-return]

    def update_image(self, image_id: str, properties: Mapping[str, Optional[str]], name: Optional[str] = None,
                     visibility: Optional[str] = None) -> Image:
        self._count("image_update")
        overlay = self._image_overlay(image_id)
        props = dict(overlay.get("properties") or {})
        for key, value in properties.items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value
        overlay["properties"] = props
        if name is not None:
            overlay["name"] = name
        if visibility is not None:
            overlay["visibility"] = visibility
        overlay["updated_at"] = utcnow().isoformat()
        self._save_state()
        return self.get_image(image_id)

    def set_image_active(self, image_id: str, active: bool) -> None:
        self._count("image_update")
        self._image_overlay(image_id)["status"] = "active" if active else "deactivated"
        self._save_state()

    def delete_image(self, image_id: str) -> None:
        self._count("image_delete")
        self.get_image(image_id)
        self._state["images"].pop(image_id, None)
        self._state["deleted_images"].append(image_id)
        self._save_state()

    # -- users and groups -------------------------------------------------------------------
    def list_groups(self) -> Iterator[Group]:
        self._count("groups")
        for g in self._items("groups"):
            yield Group(id=str(g["id"]), name=str(g.get("name", g["id"])))

    def _user_from(self, raw: Mapping[str, Any]) -> User:
        return User(id=str(raw["id"]), name=str(raw["name"]), email=raw.get("email"),
                    display_name=raw.get("display_name"), enabled=bool(raw.get("enabled", True)),
                    groups=tuple(str(g) for g in raw.get("groups") or ()),
                    x509_dns=tuple(raw.get("x509_dns") or ()), ssh_keys=tuple(raw.get("ssh_keys") or ()),
                    properties=_str_map(raw.get("properties")), quota=_quota(raw.get("quota")))

    def list_users(self) -> Iterator[User]:
        self._count("users")
        deleted = set(self._state["deleted_users"])
        seen = set()
        for raw in self._items("users"):
            user_id = str(raw["id"])
            seen.add(user_id)
            if user_id not in deleted:
                yield self._user_from(dict(raw, **self._state["users"].get(user_id, {})))
        for user_id, raw in sorted(self._state["users"].items()):
            if user_id not in seen and user_id not in deleted:
                yield self._user_from(raw)

    def _get_user(self, user_id: str) -> User:
        for user in self.list_users():
            if user.id == user_id:
                return user
        raise NotFound(f"user {user_id} not found")

    @staticmethod
    def _user_raw(user_id: str, spec: UserSpec) -> Dict[str, Any]:
        return {"id": user_id, "name": spec.name, "email": spec.email, "display_name": spec.display_name,
                "enabled": spec.enabled, "groups": list(spec.groups), "x509_dns": list(spec.x509_dns),
                "ssh_keys": list(spec.ssh_keys), "properties": dict(spec.properties),
                "quota": asdict(spec.quota) if spec.quota is not None else None}

    def create_user(self, spec: UserSpec) -> User:
        self._count("user_create")
        if any(u.name == spec.name for u in self.list_users()):
            raise BadCloudData(f"user {spec.name!r} already exists")
        user_id = str(uuid.uuid4())
        self._state["users"][user_id] = self._user_raw(user_id, spec)
        self._save_state()
        return self._get_user(user_id)

    def update_user(self, user_id: str, spec: UserSpec) -> User:
        self._count("user_update")
        current = self._get_user(user_id)
        raw = self._user_raw(user_id, spec)
        if spec.quota is None and current.quota is not None:  # None leaves the current limits
            raw["quota"] = asdict(current.quota)
        self._state["users"][user_id] = raw
        self._save_state()
        return self._get_user(user_id)

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        self._count("user_update")
        user = self._get_user(user_id)
        raw = self._state["users"].setdefault(user_id, self._user_raw(user_id, UserSpec(
            name=user.name, groups=user.groups, email=user.email, display_name=user.display_name,
            enabled=user.enabled, x509_dns=user.x509_dns, ssh_keys=user.ssh_keys, properties=user.properties,
            quota=user.quota)))
        raw["enabled"] = enabled
        self._save_state()

    def delete_user(self, user_id: str) -> None:
        self._count("user_delete")
        self._get_user(user_id)
        self._state["users"].pop(user_id, None)
        self._state["deleted_users"].append(user_id)
        self._save_state()

