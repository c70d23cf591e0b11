"""GLUE 2.0 LDIF of the site, as BDIIs accept it, written as a stream.

:class:`LdifWriter` is a small RFC 2849 writer: every value first passes
:func:`~fedcloud_site.cloudinfo.ldif_values.ldif_value` (control characters, ``dn:``
and white space at the ends are what ``bdii-update`` cannot carry; see that module),
values that are still not SAFE-STRINGs (non-ASCII, leading colon/less-than) are
base64-encoded, long lines are folded at 76 columns, and RDN values are escaped per
RFC 4514 (so DN lines never need base64, which ``bdii-update`` cannot group by
suffix).  Multi-valued attributes keep their first occurrence of each value (as slapd
compares them); ``None`` and empty values are left out.

Every entry ID in a DN or foreign key is written in its
:func:`~fedcloud_site.cloudinfo.ldif_values.ldif_id` form: unusual IDs become a
readable part plus a hash, so the DN needs no escaping and ``bdii-update`` can match
it with what slapd returns; the ID as the cloud gives it is then kept in
``GLUE2EntityOtherInfo: OriginalID=<id>``.

:func:`write_ldif` maps a :class:`~fedcloud_site.cloudinfo.model.SiteModel` to
the GLUE 2.0 cloud mapping under ``GLUE2GroupID=cloud,o=glue`` (every entry
valid against the standard GLUE 2.0 schema, RDN value == ID, parents first,
fixed order)::

    GLUE2GroupID=cloud,o=glue                                  GLUE2Group
      GLUE2ServiceID=<service>                                 ComputingService
        GLUE2ManagerID=<service>_manager                       ComputingManager
          GLUE2ResourceID=<flavour>_<service>                  ExecutionEnvironment (instance type)
            GLUE2BenchmarkID=<flavour>_<service>_<benchmark>   Benchmark (when the flavour has one)
          GLUE2ApplicationEnvironmentID=<image>_<service>      ApplicationEnvironment (image)
        GLUE2EndpointID=<endpoint>                             ComputingEndpoint
          GLUE2PolicyID=<endpoint>_policy                      AccessPolicy (VO:<vo> rules)
        GLUE2ShareID=<endpoint>_share_<vo>_<project>           ComputingShare
          GLUE2PolicyID=<share>_Policy                         MappingPolicy

GLUE 2.1 cloud details without a GLUE 2.0 attribute travel as
``GLUE2EntityOtherInfo: <GLUE 2.1 attribute name>=<value>`` (e.g. ``TotalVM=3``,
``OSName=ubuntu``, ``CloudComputingShareForeignKey=<share>`` for each share
that sees a non-public image; public images say ``Visibility=public``).
"""

from __future__ import annotations

import base64
import re
from typing import Any, BinaryIO, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..timeutil import iso_utc
from .ldif_values import equality_key, ldif_id, ldif_value
from .model import CloudImage, InstanceType, SiteModel

Attribute = Tuple[str, Any]

WIDTH = 76
#: RFC 2849 SAFE-STRING: SAFE-INIT-CHAR followed by SAFE-CHARs
_SAFE_STRING = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_RDN_PLAIN = re.compile(r"[A-Za-z0-9._:/@~-]+\Z")
_RDN_SPECIAL = {",": "\\,", "+": "\\+", '"': '\\"', "\\": "\\\\", "<": "\\<", ">": "\\>", ";": "\\;", "=": "\\="}


def escape_rdn_value(value: str) -> str:
    """An attribute value as it must appear in a DN (RFC 4514), ASCII only.

    Special characters get a backslash; a leading ``#`` or space and a trailing space are escaped;
    control and non-ASCII characters become ``\\XX`` escapes of their UTF-8 bytes.
    """
    if _RDN_PLAIN.match(value):  # what ldif_id gives: nothing to escape
        return value
    out: List[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if char in _RDN_SPECIAL:
            out.append(_RDN_SPECIAL[char])
        elif (index == 0 and char in "# ") or (index == last and char == " "):
            out.append("\\" + char)
        elif char < " " or char > "~":
            out.append("".join(f"\\{byte:02X}" for byte in char.encode("utf-8")))
        else:
            out.append(char)
    return "".join(out)


def rdn(attribute: str, value: str) -> str:
    return f"{attribute}={escape_rdn_value(value)}"


def needs_base64(value: str) -> bool:
    """True when ``value`` is not an RFC 2849 SAFE-STRING, ends with a space, or holds ``dn:``.

    ``bdii-update`` finds entries by searching the text for ``dn:``, so a plain value containing it
    would split an entry in two; base64 has no colon.
    """
    if value == "":
        return False
    return _SAFE_STRING.match(value) is None or value.endswith(" ") or "dn:" in value


def _fold(line: str, width: int) -> str:
    if len(line) <= width:
        return line + "\n"
    parts = [line[:width]]
    for start in range(width, len(line), width - 1):
        parts.append(" " + line[start:start + width - 1])
    return "\n".join(parts) + "\n"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class LdifWriter:
    """Writes LDIF entries one at a time to a binary stream (nothing is kept in memory)."""

    def __init__(self, out: BinaryIO, width: int = WIDTH) -> None:
        self.out = out
        self.width = width
        self.entries = 0
        self.bytes = 0

    def line(self, attribute: str, value: Any) -> str:
        """The (folded) line of one value, which must be :func:`ldif_value` clean and not empty."""
        text = _text(value)
        if needs_base64(text):
            encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
            return _fold(f"{attribute}:: {encoded}", self.width)
        return _fold(f"{attribute}: {text}", self.width)

    def entry(self, dn: str, attributes: Iterable[Optional[Attribute]]) -> None:
        """Write one entry; values are made :func:`ldif_value` clean, then repeated (attribute, value) pairs
        are written once, ``None`` and empty values skipped."""
        if needs_base64(dn):
            raise ValueError(f"DN must be ASCII-safe (escape RDN values with escape_rdn_value): {dn!r}")
        lines = [_fold(f"dn: {dn}", self.width)]
        seen = set()
        for item in attributes:
            if item is None or item[1] is None:
                continue
            attribute, value = item
            text = ldif_value(_text(value))
            key = (attribute.lower(), equality_key(text))
            if text == "" or key in seen:
                continue
            seen.add(key)
            lines.append(self.line(attribute, text))
        lines.append("\n")
        data = "".join(lines).encode("ascii")
        self.out.write(data)
        self.entries += 1
        self.bytes += len(data)


# --------------------------------------------------------------------------- GLUE 2.0 mapping


def _other(key: str, value: Any) -> Optional[Attribute]:
    if value is None:
        return None
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = ldif_value(_text(value))
    if text == "":
        return None
    return ("GLUE2EntityOtherInfo", f"{key}={text}")


def _original(entry_id: str) -> Optional[Attribute]:
    """``OriginalID=<id>`` when the entry's ID is published in another (safe) form."""
    return None if ldif_id(entry_id) == entry_id else _other("OriginalID", entry_id)


def _first_text(*candidates: Optional[str]) -> str:
    """The first candidate that is not empty once cleaned (for attributes the schema requires)."""
    for candidate in candidates:
        if candidate is not None and ldif_value(candidate):
            return ldif_value(candidate)
    raise ValueError("no candidate value is left once cleaned")


def _others(pairs: Iterable[Tuple[str, Any]]) -> Iterator[Attribute]:
    for key, value in pairs:
        item = _other(key, value)
        if item is not None:
            yield item


def _multi(attribute: str, values: Sequence[Any]) -> Iterator[Attribute]:
    for value in values:
        yield attribute, value


def _extended_bool(value: str) -> str:
    return {"true": "TRUE", "false": "FALSE"}.get(value, "undefined")


def _benchmark_type(kind: str) -> str:
    """GLUE 2.0 Benchmark_t spelling of an accounting benchmark name (``HEPSPEC06`` -> ``hep-spec06``)."""
    lowered = kind.strip().lower()
    if lowered.replace("-", "").replace("_", "") in ("hepspec06", "hs06"):
        return "hep-spec06"
    return lowered


def _size_gb(size_bytes: Optional[int]) -> Optional[int]:
    if size_bytes is None or size_bytes <= 0:
        return None
    return -(-size_bytes // (1 << 30))


def write_ldif(model: SiteModel, out: BinaryIO) -> LdifWriter:
    """Stream the site's GLUE 2.0 LDIF into ``out``; returns the writer (entry and byte counts)."""
    writer = LdifWriter(out)
    created = iso_utc(model.created)
    validity = str(model.validity)
    base = model.ldif_base

    def entity(name: Optional[str]) -> List[Attribute]:
        return [("GLUE2EntityName", name), ("GLUE2EntityCreationTime", created), ("GLUE2EntityValidity", validity)]

    first_attr, _, first_value = base.split(",", 1)[0].partition("=")
    if first_attr.lower() == "glue2groupid":
        writer.entry(base, [("objectClass", "GLUE2Group"), ("GLUE2GroupID", first_value)])

    svc, mgr, ept = model.service, model.manager, model.endpoint
    svc_id, mgr_id, ept_id = ldif_id(svc.id), ldif_id(mgr.id), ldif_id(ept.id)
    svc_dn = f"{rdn('GLUE2ServiceID', svc_id)},{base}"
    vms = svc.vms
    writer.entry(svc_dn, [
        ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Service"), ("objectClass", "GLUE2ComputingService"),
        ("GLUE2ServiceID", svc_id), _original(svc.id), *entity(svc.name),
        ("GLUE2ServiceType", "IaaS"), ("GLUE2ServiceQualityLevel", svc.quality_level),
        ("GLUE2ServiceAdminDomainForeignKey", svc.site), *_multi("GLUE2ServiceCapability", svc.capabilities),
        ("GLUE2ServiceStatusInfo", svc.status_info), ("GLUE2ServiceComplexity", svc.complexity),
        *_others(svc.other_info.items()),
        *_others([("ServiceType", svc.type), ("AUP", svc.aup)]),
        *_others([("TotalVM", vms.total), ("RunningVM", vms.running), ("SuspendedVM", vms.suspended),
                  ("HaltedVM", vms.halted)] if vms is not None else []),
    ])

    mgr_dn = f"{rdn('GLUE2ManagerID', mgr_id)},{svc_dn}"
    writer.entry(mgr_dn, [
        ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Manager"), ("objectClass", "GLUE2ComputingManager"),
        ("GLUE2ManagerID", mgr_id), _original(mgr.id), *entity(mgr.name),
        ("GLUE2ManagerProductName", _first_text(mgr.product_name, "UNKNOWN")),
        ("GLUE2ManagerProductVersion", mgr.product_version),
        ("GLUE2ManagerServiceForeignKey", ldif_id(mgr.service_id)),
        ("GLUE2ComputingManagerComputingServiceForeignKey", ldif_id(mgr.service_id)),
        ("GLUE2ComputingManagerTotalLogicalCPUs", mgr.total_cpus),
        *_others([("HypervisorName", mgr.hypervisor_name), ("HypervisorVersion", mgr.hypervisor_version),
                  ("TotalCPUs", mgr.total_cpus), ("TotalRAM", mgr.total_ram_mb), ("UsedCPUs", mgr.used_cpus),
                  ("UsedRAM", mgr.used_ram_mb), ("RunningVM", mgr.running_vms),
                  ("InstanceMaxCPU", mgr.instance_max_cpu), ("InstanceMinCPU", mgr.instance_min_cpu),
                  ("InstanceMaxRAM", mgr.instance_max_ram), ("InstanceMinRAM", mgr.instance_min_ram),
                  ("CPUVirtualizationType", mgr.cpu_virtualization_type),
                  ("NetworkVirtualizationType", mgr.network_virtualization_type),
                  ("Failover", mgr.failover), ("LiveMigration", mgr.live_migration),
                  ("VMBackupRestore", mgr.vm_backup_restore)]),
        *_others(("VirtualdiskFormat", f) for f in mgr.virtual_disk_formats),
    ])

    for itype in model.instance_types:
        _execution_environment(writer, model, itype, mgr_dn, entity)
    for image in model.images:
        _application_environment(writer, model, image, mgr_dn, entity)

    ept_dn = f"{rdn('GLUE2EndpointID', ept_id)},{svc_dn}"
    writer.entry(ept_dn, [
        ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Endpoint"), ("objectClass", "GLUE2ComputingEndpoint"),
        ("GLUE2EndpointID", ept_id), _original(ept.id), *entity(ept.name), ("GLUE2EndpointURL", ept.url),
        ("GLUE2EndpointInterfaceName", ept.interface_name), ("GLUE2EndpointInterfaceVersion", ept.interface_version),
        ("GLUE2EndpointQualityLevel", ept.quality_level), ("GLUE2EndpointHealthState", ept.health_state),
        ("GLUE2EndpointHealthStateInfo", ept.health_state_info), ("GLUE2EndpointServingState", ept.serving_state),
        ("GLUE2EndpointServiceForeignKey", ldif_id(ept.service_id)),
        ("GLUE2ComputingEndpointComputingServiceForeignKey", ldif_id(ept.service_id)),
        *_multi("GLUE2EndpointCapability", ept.capabilities), ("GLUE2EndpointTechnology", ept.technology),
        ("GLUE2EndpointImplementor", ept.implementor), ("GLUE2EndpointImplementationName", ept.implementation_name),
        ("GLUE2EndpointImplementationVersion", ept.implementation_version),
        ("GLUE2EndpointSemantics", ept.semantics), ("GLUE2EndpointDowntimeInfo", ept.downtime_info),
        ("GLUE2EndpointIssuerCA", ept.issuer_ca), *_multi("GLUE2EndpointTrustedCA", ept.trusted_cas),
        *_others([("Authn", ept.authentication), ("HostDN", ept.host_dn)]),
    ])
    policy = model.access_policy
    if policy.rules:
        writer.entry(f"{rdn('GLUE2PolicyID', ldif_id(policy.id))},{ept_dn}", [
            ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Policy"), ("objectClass", "GLUE2AccessPolicy"),
            ("GLUE2PolicyID", ldif_id(policy.id)), _original(policy.id), *entity(f"Access control rules for {ept.id}"),
            ("GLUE2PolicyScheme", "org.glite.standard"), *_multi("GLUE2PolicyRule", policy.rules),
            *_multi("GLUE2PolicyUserDomainForeignKey", [r.split(":", 1)[1] for r in policy.rules]),
            ("GLUE2AccessPolicyEndpointForeignKey", ldif_id(policy.endpoint_id)),
        ])

    for share in model.shares:
        ee_ids = [ldif_id(t.ldif_id) for t in model.instance_types_of(share)]
        share_id, policy_id = ldif_id(share.id), ldif_id(share.policy_id)
        share_dn = f"{rdn('GLUE2ShareID', share_id)},{svc_dn}"
        svms = share.vms
        writer.entry(share_dn, [
            ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Share"), ("objectClass", "GLUE2ComputingShare"),
            ("GLUE2ShareID", share_id), _original(share.id), *entity(share.name),
            ("GLUE2ShareDescription", share.description),
            ("GLUE2ShareServiceForeignKey", svc_id), ("GLUE2ShareEndpointForeignKey", ept_id),
            ("GLUE2ComputingShareServingState", ept.serving_state),
            ("GLUE2ComputingShareComputingServiceForeignKey", svc_id),
            ("GLUE2ComputingShareComputingEndpointForeignKey", ept_id),
            *_multi("GLUE2ComputingShareExecutionEnvironmentForeignKey", ee_ids),
            *_others([("VO", share.vo), ("ProjectID", share.project_id), ("project_name", share.project_name),
                      ("project_domain_name", share.project_domain), ("SLA", share.sla),
                      ("InstanceMaxCPU", share.instance_max_cpu), ("InstanceMaxRAM", share.instance_max_ram),
                      ("MaxVM", share.max_vm), ("NetworkInfo", share.network_info),
                      ("DefaultNetworkType", share.default_network_type),
                      ("PublicNetworkName", share.public_network_name)]),
            *_others([("TotalVM", svms.total), ("RunningVM", svms.running), ("SuspendedVM", svms.suspended),
                      ("HaltedVM", svms.halted)] if svms is not None else []),
            *_others((f"quota_{k}", v) for k, v in sorted(share.quotas.items())),
        ])
        writer.entry(f"{rdn('GLUE2PolicyID', policy_id)},{share_dn}", [
            ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Policy"), ("objectClass", "GLUE2MappingPolicy"),
            ("GLUE2PolicyID", policy_id), _original(share.policy_id),
            *entity(f"Mapping of VO {share.vo} to {share.id}"),
            ("GLUE2PolicyScheme", "org.glite.standard"), ("GLUE2PolicyRule", share.rule),
            ("GLUE2PolicyUserDomainForeignKey", share.vo), ("GLUE2MappingPolicyShareForeignKey", share_id),
        ])
    return writer


def _execution_environment(writer: LdifWriter, model: SiteModel, itype: InstanceType, mgr_dn: str,
                           entity: Any) -> None:
    ee_id, mgr_id = ldif_id(itype.ldif_id), ldif_id(model.manager.id)
    ee_dn = f"{rdn('GLUE2ResourceID', ee_id)},{mgr_dn}"
    acc = itype.accelerator
    writer.entry(ee_dn, [
        ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Resource"),
        ("objectClass", "GLUE2ExecutionEnvironment"), ("GLUE2ResourceID", ee_id), _original(itype.ldif_id),
        *entity(itype.name), ("GLUE2ResourceManagerForeignKey", mgr_id),
        ("GLUE2ExecutionEnvironmentComputingManagerForeignKey", mgr_id),
        ("GLUE2ExecutionEnvironmentPlatform", model.instance_platform),
        ("GLUE2ExecutionEnvironmentMainMemorySize", itype.ram_mb),
        ("GLUE2ExecutionEnvironmentOSFamily", model.instance_os_family),
        ("GLUE2ExecutionEnvironmentConnectivityIn", _extended_bool(model.network_in)),
        ("GLUE2ExecutionEnvironmentConnectivityOut", _extended_bool(model.network_out)),
        ("GLUE2ExecutionEnvironmentVirtualMachine", "TRUE"),
        ("GLUE2ExecutionEnvironmentLogicalCPUs", itype.cpu),
        *_others([("InstanceTypeID", itype.id), ("Disk", itype.disk_gb),
                  ("EphemeralStorage", itype.ephemeral_gb or None), ("Public", itype.public)]),
        *_others([("AcceleratorType", acc.type), ("AcceleratorNumber", acc.number),
                  ("AcceleratorVendor", acc.vendor), ("AcceleratorModel", acc.model)] if acc is not None else []),
    ])
    if itype.benchmark_type and itype.benchmark_value is not None:
        kind = _benchmark_type(itype.benchmark_type)
        bench_id = ldif_id(f"{itype.ldif_id}_{kind}")
        writer.entry(f"{rdn('GLUE2BenchmarkID', bench_id)},{ee_dn}", [
            ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2Benchmark"), ("GLUE2BenchmarkID", bench_id),
            _original(f"{itype.ldif_id}_{kind}"), *entity(f"{itype.benchmark_type} of {itype.name}"),
            ("GLUE2BenchmarkType", _first_text(kind, "UNKNOWN")), ("GLUE2BenchmarkValue", itype.benchmark_value),
            ("GLUE2BenchmarkExecutionEnvironmentForeignKey", ee_id),
            ("GLUE2BenchmarkComputingManagerForeignKey", mgr_id),
        ])


def _application_environment(writer: LdifWriter, model: SiteModel, image: CloudImage, mgr_dn: str,
                             entity: Any) -> None:
    ae_id = ldif_id(image.ldif_id)
    writer.entry(f"{rdn('GLUE2ApplicationEnvironmentID', ae_id)},{mgr_dn}", [
        ("objectClass", "GLUE2Entity"), ("objectClass", "GLUE2ApplicationEnvironment"),
        ("GLUE2ApplicationEnvironmentID", ae_id), _original(image.ldif_id), *entity(image.name),
        ("GLUE2ApplicationEnvironmentAppName", _first_text(image.name, image.id, ae_id)),
        ("GLUE2ApplicationEnvironmentAppVersion", image.version),
        ("GLUE2ApplicationEnvironmentRepository", image.marketplace_url),
        ("GLUE2ApplicationEnvironmentDescription", image.description),
        ("GLUE2ApplicationEnvironmentComputingManagerForeignKey", ldif_id(model.manager.id)),
        *_others([("ImageID", image.id), ("OSName", image.os_name), ("OSVersion", image.os_version),
                  ("OSPlatform", image.os_platform), ("DiskSize", _size_gb(image.size_bytes)),
                  ("DiskFormat", image.disk_format), ("MinRAM", image.min_ram_mb or None),
                  ("MinDisk", image.min_disk_gb or None), ("AccessInfo", model.image_access_info),
                  ("Visibility", "public" if image.public else None)]),
        *_others(("CloudComputingShareForeignKey", ldif_id(s)) for s in (() if image.public else image.share_ids)),
    ])
