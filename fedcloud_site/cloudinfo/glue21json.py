"""GLUE 2.1 JSON of the site in cloud-info-provider 1.x's ``glue21json`` shape, written as a stream.

The document is an object keyed by class name (``CloudComputingService``,
``CloudComputingManager``, ``CloudComputingEndpoint``, ``CloudComputingImage``,
``CloudComputingInstanceType``, ``CloudComputingVirtualAccelerator``, ``Share``,
``MappingPolicy``, ``AccessPolicy``); each holds a list of objects with the
unprefixed GLUE names cloud-info-provider uses (``ID``, ``Name``,
``CreationTime``, ``Validity``, ``OtherInfo``, ``Associations`` and the class's
attributes, including its spellings such as ``MarketplaceURL`` and
``ManagerFailover``).  Attributes without a value are left out.

One difference: cloud-info-provider repeats every image and instance type once
per share (each copy associated with that share); here each appears once, its
``Associations.Share`` listing every share that offers it.  Consumers that test
``share_id in obj["Associations"]["Share"]`` read both the same way, and the
document no longer grows with images x shares.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, BinaryIO, Dict, Iterable, Iterator, Optional, Tuple

from .model import UNKNOWN, CloudImage, InstanceType, SiteModel

#: order of the classes in the document (cloud-info-provider's order)
CLASSES = ("CloudComputingService", "CloudComputingManager", "CloudComputingEndpoint", "CloudComputingImage",
           "CloudComputingInstanceType", "CloudComputingVirtualAccelerator", "Share", "MappingPolicy",
           "AccessPolicy")

_EXTENDED_BOOL = {"true": True, "false": False, "unknown": "UNKNOWN"}


def json_time(moment: datetime) -> str:
    """``2026-01-31T12:00:00+00:00``: what Python's ``fromisoformat`` and dateutil both read."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _obj(common: Dict[str, Any], fields: Iterable[Tuple[str, Any]]) -> Dict[str, Any]:
    obj = {k: v for k, v in common.items() if v is not None and v != {}}
    for key, value in fields:
        if value is not None:
            obj[key] = value
    return obj


class _Doc:
    def __init__(self, model: SiteModel) -> None:
        self.model = model
        self.created = json_time(model.created)

    def common(self, id: str, name: Optional[str] = None, other_info: Optional[Dict[str, Any]] = None,
               associations: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        return {"ID": id, "Validity": self.model.validity, "CreationTime": self.created, "Name": name,
                "OtherInfo": other_info or {}, "Associations": associations or {}}

    # -- classes ------------------------------------------------------------------------------
    def services(self) -> Iterator[Dict[str, Any]]:
        svc = self.model.service
        vms = svc.vms
        yield _obj(self.common(svc.id, svc.name, dict(svc.other_info), {"AdminDomain": [svc.site]}), [
            ("Type", svc.type), ("QualityLevel", svc.quality_level), ("StatusInfo", svc.status_info),
            ("ServiceAUP", svc.aup), ("Complexity", svc.complexity), ("Capability", list(svc.capabilities)),
            ("TotalVM", vms.total if vms else None), ("RunningVM", vms.running if vms else None),
            ("SuspendedVM", vms.suspended if vms else None), ("HaltedVM", vms.halted if vms else None),
        ])

    def managers(self) -> Iterator[Dict[str, Any]]:
        mgr = self.model.manager
        yield _obj(self.common(mgr.id, None, None, {"CloudComputingService": [mgr.service_id]}), [
            ("ProductName", mgr.product_name), ("ProductVersion", mgr.product_version),
            ("HypervisorName", mgr.hypervisor_name), ("HypervisorVersion", mgr.hypervisor_version),
            ("TotalCPUs", mgr.total_cpus), ("TotalRAM", mgr.total_ram_mb),
            ("InstanceMaxCPU", mgr.instance_max_cpu), ("InstanceMinCPU", mgr.instance_min_cpu),
            ("InstanceMaxRAM", mgr.instance_max_ram), ("InstanceMinRAM", mgr.instance_min_ram),
            ("NetworkVirtualizationType", mgr.network_virtualization_type),
            ("CPUVirtualizationType", mgr.cpu_virtualization_type),
            ("ManagerVirtualdiskFormat", ",".join(mgr.virtual_disk_formats) or None),
            ("ManagerFailover", mgr.failover), ("ManagerLiveMigration", mgr.live_migration),
            ("ManagerVMBackupRestore", mgr.vm_backup_restore),
        ])

    def endpoints(self) -> Iterator[Dict[str, Any]]:
        ept = self.model.endpoint
        other = {"HostDN": ept.host_dn} if ept.host_dn else {}
        yield _obj(self.common(ept.id, ept.name, other, {"CloudComputingService": [ept.service_id]}), [
            ("Capability", list(ept.capabilities)), ("QualityLevel", ept.quality_level),
            ("InterfaceName", ept.interface_name), ("InterfaceVersion", ept.interface_version),
            ("HealthState", ept.health_state), ("HealthStateInfo", ept.health_state_info),
            ("ServingState", ept.serving_state), ("Technology", ept.technology), ("Implementor", ept.implementor),
            ("ImplementationName", ept.implementation_name), ("ImplementationVersion", ept.implementation_version),
            ("DowntimeInfo", ept.downtime_info), ("Semantics", ept.semantics), ("Authentication", ept.authentication),
            ("IssuerCA", ept.issuer_ca), ("TrustedCA", list(ept.trusted_cas) or None), ("URL", ept.url),
        ])

    def images(self) -> Iterator[Dict[str, Any]]:
        links = {"CloudComputingEndpoint": [self.model.endpoint.id], "CloudComputingManager": [self.model.manager.id]}
        for image in self.model.images:
            yield self.image(image, links)

    def image(self, image: CloudImage, links: Dict[str, Any]) -> Dict[str, Any]:
        return _obj(self.common(image.id, image.name, dict(image.other_info),
                                {"Share": list(image.share_ids), **links}), [
            ("MarketplaceURL", image.marketplace_url), ("OSPlatform", image.os_platform or UNKNOWN),
            ("OSName", image.os_name or UNKNOWN), ("OSVersion", image.os_version or UNKNOWN),
            ("Description", image.description or UNKNOWN),
            ("AccessInfo", self.model.image_access_info),
        ])

    def instance_types(self) -> Iterator[Dict[str, Any]]:
        every_share = [s.id for s in self.model.shares]
        links = {"CloudComputingEndpoint": [self.model.endpoint.id], "CloudComputingManager": [self.model.manager.id]}
        for itype in self.model.instance_types:
            share_ids = every_share if itype.projects is None else self.model.shares_of(itype)
            yield self.instance_type(itype, share_ids, links)

    def instance_type(self, itype: InstanceType, share_ids: Any, links: Dict[str, Any]) -> Dict[str, Any]:
        associations = {"Share": share_ids, **links}
        if itype.accelerator is not None:
            associations["CloudComputingVirtualAccelerator"] = [itype.accelerator.id]
        return _obj(self.common(itype.id, itype.name, None, associations), [
            ("Platform", self.model.instance_platform), ("CPU", itype.cpu), ("RAM", itype.ram_mb),
            ("Disk", itype.disk_gb), ("EphemeralStorage", itype.ephemeral_gb or None),
            ("NetworkIn", _EXTENDED_BOOL[self.model.network_in]),
            ("NetworkOut", _EXTENDED_BOOL[self.model.network_out]),
        ])

    def accelerators(self) -> Iterator[Dict[str, Any]]:
        for itype in self.model.instance_types:
            acc = itype.accelerator
            if acc is None:
                continue
            yield _obj(self.common(acc.id, acc.name, None, {"CloudComputingInstanceType": [itype.id]}), [
                ("Type", acc.type), ("Number", acc.number), ("Vendor", acc.vendor), ("Model", acc.model),
                ("ComputeCapability", []),
            ])

    def shares(self) -> Iterator[Dict[str, Any]]:
        svc, ept = self.model.service, self.model.endpoint
        for share in self.model.shares:
            vms = share.vms
            other: Dict[str, Any] = {"project_name": share.project_name, "project_domain_name": share.project_domain,
                                     "quotas": dict(share.quotas)}
            yield _obj(self.common(share.id, share.name, other,
                                   {"CloudComputingService": [svc.id], "CloudComputingEndpoint": [ept.id]}), [
                ("InstanceMaxCPU", share.instance_max_cpu), ("InstanceMaxRAM", share.instance_max_ram),
                ("SLA", share.sla), ("TotalVM", vms.total if vms else None),
                ("RunningVM", vms.running if vms else None), ("SuspendedVM", vms.suspended if vms else None),
                ("HaltedVM", vms.halted if vms else None), ("MaxVM", share.max_vm),
                ("NetworkInfo", share.network_info), ("DefaultNetworkType", share.default_network_type),
                ("PublicNetworkName", share.public_network_name), ("ProjectID", share.project_id),
            ])

    def mapping_policies(self) -> Iterator[Dict[str, Any]]:
        for share in self.model.shares:
            yield _obj(self.common(share.policy_id, None, None, {"Share": [share.id], "PolicyUserDomain": [share.vo]}),
                       [("Rule", [share.rule]), ("Scheme", "org.glite.standard")])

    def access_policies(self) -> Iterator[Dict[str, Any]]:
        policy = self.model.access_policy
        yield _obj(self.common(policy.id, None, None, {"CloudComputingEndpoint": [policy.endpoint_id]}),
                   [("Rule", list(policy.rules)), ("Scheme", "org.glite.standard")])

    def sections(self) -> Iterator[Tuple[str, Iterator[Dict[str, Any]]]]:
        yield "CloudComputingService", self.services()
        yield "CloudComputingManager", self.managers()
        yield "CloudComputingEndpoint", self.endpoints()
        if self.model.shares:
            yield "CloudComputingImage", self.images()
            yield "CloudComputingInstanceType", self.instance_types()
            if any(t.accelerator is not None for t in self.model.instance_types):
                yield "CloudComputingVirtualAccelerator", self.accelerators()
            yield "Share", self.shares()
            yield "MappingPolicy", self.mapping_policies()
        yield "AccessPolicy", self.access_policies()


#: code points UTF-8 cannot hold (cloud data decoded with surrogateescape, broken UTF-16): written as U+FFFD,
#: as in the LDIF
_SURROGATE = re.compile("[\ud800-\udfff]")


def write_json(model: SiteModel, out: BinaryIO) -> int:
    """Stream the GLUE 2.1 JSON document into ``out`` one object at a time; returns the bytes written."""
    written = 0

    def emit(text: str) -> None:
        nonlocal written
        data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
        out.write(data)
        written += len(data)

    encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    emit("{")
    for number, (name, objects) in enumerate(_Doc(model).sections()):
        emit(("" if number == 0 else ", ") + json.dumps(name) + ": [")
        for index, obj in enumerate(objects):
            emit(("" if index == 0 else ", ") + encode(obj))
        emit("]")
    emit("}\n")
    return written


def document(model: SiteModel) -> Dict[str, Any]:
    """The whole document as a dict (small sites, tests)."""
    return {name: list(objects) for name, objects in _Doc(model).sections()}
