"""Pure converters of OpenStack API answers into the backend-neutral records, and the state tables.

No I/O here: :mod:`.backend` fetches, these functions read what it fetched.  Each raises
:class:`~fedcloud_site.cloud.base.BadCloudData` naming the object it could not read.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any, Dict, List, Mapping, Tuple, Union

from ...timeutil import parse_time
from ..base import BadCloudData, Flavor, FloatingIP, StateChange, User, VMState
from ..flavor_specs import decode_flavor_specs

#: Nova server status -> backend-neutral state (see the module documentation)
NOVA_STATES: Dict[str, VMState] = {
    "ACTIVE": VMState.RUNNING, "REBOOT": VMState.RUNNING, "HARD_REBOOT": VMState.RUNNING,
    "REBUILD": VMState.RUNNING, "MIGRATING": VMState.RUNNING, "RESIZE": VMState.RUNNING,
    "VERIFY_RESIZE": VMState.RUNNING, "REVERT_RESIZE": VMState.RUNNING, "PASSWORD": VMState.RUNNING,
    "RESCUE": VMState.RUNNING,
    "BUILD": VMState.PENDING,
    "PAUSED": VMState.PAUSED,
    "SUSPENDED": VMState.SUSPENDED,
    "SHUTOFF": VMState.STOPPED, "SHELVED": VMState.STOPPED, "SHELVED_OFFLOADED": VMState.STOPPED,
    "SOFT_DELETED": VMState.STOPPED,
    "ERROR": VMState.ERROR,
    "DELETED": VMState.DELETED,
    "UNKNOWN": VMState.UNKNOWN,
}

#: Nova instance action -> the state it leaves the server in (when it succeeds); other actions (resize,
#: migrate, rebuild, attach/detach, lock, backup, ...) keep the power state the server had
INSTANCE_ACTION_STATES: Dict[str, VMState] = {
    "start": VMState.RUNNING, "reboot": VMState.RUNNING, "resume": VMState.RUNNING, "unpause": VMState.RUNNING,
    "unshelve": VMState.RUNNING, "restore": VMState.RUNNING, "unrescue": VMState.RUNNING,
    "rescue": VMState.RUNNING,
    "stop": VMState.STOPPED, "shelve": VMState.STOPPED, "shelveOffload": VMState.STOPPED,
    "pause": VMState.PAUSED, "suspend": VMState.SUSPENDED, "delete": VMState.DELETED,
}
MANAGED_ATTRIBUTE = "fedcloud_site_managed"
#: Keystone user attributes that are not user properties
USER_CORE = {"id", "name", "domain_id", "enabled", "email", "description", "default_project_id", "options", "links",
             "password_expires_at", "federated", MANAGED_ATTRIBUTE, "x509_dns", "ssh_keys"}
PROJECT_CORE = {"id", "name", "domain_id", "enabled", "description", "parent_id", "is_domain", "tags", "options",
                "links"}
#: Glance image attributes that are not image properties
IMAGE_CORE = {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
              "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk", "disk_format",
              "container_format", "created_at", "updated_at", "tags", "self", "file", "schema", "direct_url",
              "locations", "stores"}
GLANCE_PATCH = "application/openstack-images-v2.1-json-patch"
GLANCE_MAX_NAME = 255  # Glance's image schema: name maxLength


def glance_image_name(name: str) -> str:
    """``name`` as Glance takes it: at most 255 characters; a longer name is cut and ends in ``~`` plus 8 hex
    digits of its SHA-256, so two long names that share their first 255 characters stay distinct."""
    if len(name) <= GLANCE_MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return name[: GLANCE_MAX_NAME - len(digest) - 1] + "~" + digest


def flavor_record(raw: Mapping[str, Any], specs: Any) -> Flavor:
    where = f"flavor {raw.get('id')} ({raw.get('name')})"
    try:
        if not isinstance(specs, Mapping):
            raise TypeError(f"extra specs are not an object: {str(specs)[:100]!r}")
        str_specs = {str(k): str(v) for k, v in specs.items()}
        accelerator, bench_type, bench_value = decode_flavor_specs(str_specs)
        return Flavor(id=str(raw["id"]), name=str(raw.get("name") or raw["id"]), vcpus=float(raw["vcpus"]),
                      ram_mb=int(raw["ram"]), disk_gb=int(raw.get("disk") or 0),
                      ephemeral_gb=int(raw.get("OS-FLV-EXT-DATA:ephemeral") or 0),
                      public=bool(raw.get("os-flavor-access:is_public", True)), extra_specs=str_specs,
                      accelerator=accelerator, benchmark_type=bench_type, benchmark_value=bench_value)
    except KeyError as exc:
        raise BadCloudData(f"{where}: missing {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise BadCloudData(f"{where}: {exc}") from exc


def state_change(raw: Any, what: str) -> Union[None, StateChange, Tuple[StateChange]]:
    """The state an instance action left the server in (None: no change); the create action as a 1-tuple."""
    if not isinstance(raw, dict):
        raise BadCloudData(f"{what}: an action is not an object: {str(raw)[:200]}")
    action = str(raw.get("action") or "")
    failed = str(raw.get("message") or "").lower() == "error"
    try:
        started = parse_time(raw["start_time"])
        ended = parse_time(raw["updated_at"]) if raw.get("updated_at") else started
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise BadCloudData(f"{what}: action {action!r} has no readable start_time/updated_at: {exc}") from exc
    if action == "create":
        return (StateChange(at=ended, state=VMState.ERROR if failed else VMState.RUNNING),)
    state = INSTANCE_ACTION_STATES.get(action)
    if state is None or failed:
        return None
    return StateChange(at=started, state=state)


def floating_ip_record(raw: Mapping[str, Any]) -> FloatingIP:
    where = f"floating IP {raw.get('id')}"
    try:
        address = ipaddress.ip_address(str(raw["floating_ip_address"]))
        created = parse_time(raw["created_at"]) if raw.get("created_at") else None
    except (KeyError, ValueError) as exc:
        raise BadCloudData(f"{where}: {exc}") from exc
    return FloatingIP(id=str(raw["id"]), address=str(address), version=address.version,
                      project_id=str(raw.get("project_id") or raw.get("tenant_id") or ""), user_id=None,
                      created_at=created, attached=raw.get("port_id") is not None)


def user_record(raw: Mapping[str, Any], groups: List[str]) -> User:
    props = {str(k): str(v) for k, v in raw.items() if k not in USER_CORE and v is not None}
    if raw.get(MANAGED_ATTRIBUTE):
        props[MANAGED_ATTRIBUTE] = "true"
    return User(id=str(raw["id"]), name=str(raw["name"]), email=raw.get("email"),
                display_name=raw.get("description"), enabled=bool(raw.get("enabled", True)),
                groups=tuple(groups), x509_dns=tuple(raw.get("x509_dns") or ()),
                ssh_keys=tuple(raw.get("ssh_keys") or ()), properties=props)
