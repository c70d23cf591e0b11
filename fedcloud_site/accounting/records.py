"""APEL record types and their wire form.

Four record types, each sent in its own message type (see :mod:`.messages`):

* :class:`CloudRecord` - APEL cloud usage record v0.4 (``Key: value`` lines);
* :class:`IPRecord` - public IP usage (JSON, ``APEL Public IP message``);
* :class:`AcceleratorRecord` - GPU usage (JSON, ``APEL-accelerator-message``);
* :class:`StorageRecord` - block storage (StAR XML).

Every text value is made safe for the wire by :func:`wire_text`: ASCII only (apel/ssm
decodes messages as ASCII; accents are folded, other characters dropped), no control
characters (a newline would start a new ``Key:`` line), no ``%%`` (the record separator),
at most the width of the APEL database column (MySQL rejects longer values, and one
rejected record sends the whole message to the server's reject queue).  Only keys the
APEL server knows are ever emitted.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple
from xml.sax.saxutils import escape, quoteattr

from ..errors import FedcloudSiteError
from ..timeutil import iso_utc, parse_time

#: the only Status values we send (the APEL server does not check them; EGI's portal groups by them)
WIRE_STATUSES = ("started", "completed", "suspended")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class BadRecord(FedcloudSiteError, ValueError):
    """A record the APEL server would reject or misread; the message names the record."""


def wire_text(value: Any, limit: int = 255) -> str:
    """``value`` as ASCII text without newlines or ``%%``, at most ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    if not (text.isascii() and text.isprintable()):  # fast path: most values are plain ASCII already
        if not text.isascii():
            text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        text = _CONTROL.sub(" ", text)
    while "%%" in text:
        text = text.replace("%%", "%")
    if len(text) > limit or text[:1].isspace() or text[-1:].isspace():
        text = text.strip()[:limit].strip()
    return text


#: the largest values the APEL database columns hold: BIGINT counters, DECIMAL(10,3) numbers, DATETIME up to
#: 9999-12-31 (MySQL refuses a larger value, and with it the whole message)
MAX_COUNT = 2 ** 63 - 1
MAX_DECIMAL = 9999999.999
MAX_EPOCH = 253402300799


def wire_count(value: Any, what: str, limit: int = MAX_COUNT) -> int:
    """``value`` as a non-negative integer the server's column holds; BadRecord naming ``what`` otherwise."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRecord(f"{what} is not a number ({value})")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRecord(f"{what} is not an integer ({value!r:.40})") from exc
    if number < 0:
        raise BadRecord(f"{what} is negative ({number})")
    if number > limit:
        raise BadRecord(f"{what} is too large for the APEL database ({number:.3g} > {limit})")
    return number


def wire_decimal(value: Any, what: str) -> float:
    """``value`` as a finite, non-negative number within DECIMAL(10,3); BadRecord naming ``what`` otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRecord(f"{what} is not a number ({value!r:.40})") from exc
    if not math.isfinite(number) or number < 0 or number > MAX_DECIMAL:
        raise BadRecord(f"{what} ({number}) is not within 0 .. {MAX_DECIMAL}")
    return number


def format_number(value: float) -> str:
    """``2`` for 2.0, ``10.5`` for 10.5, at most 3 decimals (DECIMAL(10,3) on the server)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def json_number(value: float) -> Any:
    """An int when integral, else a float rounded to 3 decimals."""
    return int(value) if float(value).is_integer() else round(float(value), 3)


# APEL key -> (attribute, kind, max width).  kinds: text, int (durations, counts, sizes),
# time (epoch seconds), number (decimal).  Column widths from the APEL cloud schema.
_CLOUD_FIELDS: Tuple[Tuple[str, str, str, int], ...] = (
    ("Benchmark", "benchmark", "number", 0),
    ("BenchmarkType", "benchmark_type", "text", 50),
    ("CloudComputeService", "cloud_compute_service", "text", 255),
    ("CloudType", "cloud_type", "text", 255),
    ("CpuCount", "cpu_count", "number", 0),
    ("CpuDuration", "cpu_duration", "int", 0),
    ("Disk", "disk", "int", 0),
    ("EndTime", "end_time", "time", 0),
    ("FQAN", "fqan", "text", 255),
    ("GlobalUserName", "global_user_name", "text", 255),
    ("ImageId", "image_id", "text", 255),
    ("LocalGroupId", "local_group_id", "text", 255),
    ("LocalUserId", "local_user_id", "text", 255),
    ("MachineName", "machine_name", "text", 255),
    ("Memory", "memory", "int", 0),
    ("NetworkInbound", "network_inbound", "int", 0),
    ("NetworkOutbound", "network_outbound", "int", 0),
    ("NetworkType", "network_type", "text", 255),
    ("PublicIPCount", "public_ip_count", "int", 0),
    ("RecordCreateTime", "measurement_time", "time", 0),
    ("SiteName", "site_name", "text", 255),
    ("StartTime", "start_time", "time", 0),
    ("Status", "status", "text", 255),
    ("StorageRecordId", "storage_record_id", "text", 255),
    ("SuspendDuration", "suspend_duration", "int", 0),
    ("VMUUID", "vm_uuid", "text", 255),
    ("WallDuration", "wall_duration", "int", 0),
)

#: every key a cloud record may carry, in the (alphabetical) order they are rendered
CLOUD_KEYS: Tuple[str, ...] = tuple(key for key, _, _, _ in _CLOUD_FIELDS)
#: keys every cloud record we send carries
CLOUD_MANDATORY: Tuple[str, ...] = ("VMUUID", "SiteName", "FQAN", "Status", "StartTime")


@dataclass(frozen=True)
class CloudRecord:
    """One VM's cumulative usage from its start up to ``measurement_time`` (APEL cloud record v0.4).

    ``measurement_time`` is sent as ``RecordCreateTime``: the APEL server files the record under
    the month of that instant (for completed VMs: of ``EndTime``) and keeps, per VM and month,
    the record with the latest measurement.  ``end_time`` is set only for completed VMs.
    """

    vm_uuid: str
    site_name: str
    fqan: str
    status: str
    start_time: int
    measurement_time: int
    cloud_compute_service: Optional[str] = None
    machine_name: Optional[str] = None
    local_user_id: Optional[str] = None
    local_group_id: Optional[str] = None
    global_user_name: Optional[str] = None
    end_time: Optional[int] = None
    suspend_duration: Optional[int] = None
    wall_duration: Optional[int] = None
    cpu_duration: Optional[int] = None
    cpu_count: Optional[float] = None
    network_type: Optional[str] = None
    network_inbound: Optional[int] = None
    network_outbound: Optional[int] = None
    public_ip_count: Optional[int] = None
    memory: Optional[int] = None
    disk: Optional[int] = None
    storage_record_id: Optional[str] = None
    image_id: Optional[str] = None
    cloud_type: Optional[str] = None
    benchmark_type: Optional[str] = None
    benchmark: Optional[float] = None

    def wire_fields(self) -> List[Tuple[str, str]]:
        """``(key, value)`` pairs as sent, alphabetical, empty values left out; BadRecord if unsendable."""
        fields: List[Tuple[str, str]] = []
        for key, attr, kind, limit in _CLOUD_FIELDS:
            value = getattr(self, attr)
            if value is None:
                continue
            if kind == "text":
                text = wire_text(value, limit)
                if text.lower() in ("", "none", "null"):  # the server reads these as NULL
                    continue
            elif kind == "number":
                text = format_number(wire_decimal(value, f"VM {self.vm_uuid}: {key}"))
            else:
                text = str(wire_count(value, f"VM {self.vm_uuid}: {key}", MAX_EPOCH if kind == "time" else MAX_COUNT))
            fields.append((key, text))
        present = {key for key, _ in fields}
        missing = [key for key in CLOUD_MANDATORY if key not in present]
        if missing:
            raise BadRecord(f"VM {self.vm_uuid or '?'}: no value for mandatory {', '.join(missing)}")
        if self.status not in WIRE_STATUSES:
            raise BadRecord(f"VM {self.vm_uuid}: Status {self.status!r} is not one of {', '.join(WIRE_STATUSES)}")
        if (self.status == "completed") != (self.end_time is not None):
            raise BadRecord(f"VM {self.vm_uuid}: EndTime must be set exactly when the VM is completed")
        if self.end_time is not None and self.end_time < self.start_time:
            raise BadRecord(f"VM {self.vm_uuid}: EndTime is before StartTime")
        return fields

    def render(self) -> str:
        """The record's ``Key: value`` lines (each ending in a newline)."""
        return "".join(f"{key}: {value}\n" for key, value in self.wire_fields())


@dataclass(frozen=True)
class IPRecord:
    """Public IPs held by one user (or, for project-owned floating IPs, one project) at an instant.

    The APEL IP table keys records by site, service, GlobalUserName, IP version and month, so
    ``global_user_name`` must tell users apart: when no global name is known we send the local
    id, never a shared placeholder (which would let one user's record overwrite another's).
    """

    measurement_time: int
    site_name: str
    cloud_compute_service: str
    cloud_type: str
    local_user: str
    local_group: str
    global_user_name: str
    fqan: str
    ip_version: int
    ip_count: int

    def as_json(self) -> Dict[str, Any]:
        if self.ip_version not in (4, 6):
            raise BadRecord(f"IP record of {self.local_user}: IPVersion must be 4 or 6, not {self.ip_version}")
        what = f"IP record of {self.local_user}"
        data = {
            "MeasurementTime": wire_count(self.measurement_time, f"{what}: MeasurementTime", MAX_EPOCH),
            "SiteName": wire_text(self.site_name),
            "CloudComputeService": wire_text(self.cloud_compute_service),
            "CloudType": wire_text(self.cloud_type),
            "LocalUser": wire_text(self.local_user),
            "LocalGroup": wire_text(self.local_group),
            "GlobalUserName": wire_text(self.global_user_name),
            "FQAN": wire_text(self.fqan),
            "IPVersion": int(self.ip_version),
            "IPCount": wire_count(self.ip_count, f"{what}: IPCount"),
        }
        empty = [key for key in ("SiteName", "LocalUser", "LocalGroup", "GlobalUserName", "FQAN") if not data[key]]
        if empty:
            raise BadRecord(f"{what}: no value for mandatory {', '.join(empty)}")
        return data


#: accelerator types the APEL accelerator schema accepts; anything else is sent as "Other"
ACCELERATOR_TYPES = ("GPU", "FPGA", "Other")


@dataclass(frozen=True)
class AcceleratorRecord:
    """Accelerators held by one VM within one calendar month, cumulative within that month."""

    measurement_month: int
    measurement_year: int
    associated_record: str  # the VMUUID of the VM's cloud records
    fqan: str
    site_name: str
    count: float
    available_duration: int
    type: str
    model: Optional[str] = None
    global_user_name: Optional[str] = None

    def as_json(self) -> Dict[str, Any]:
        kind = next((t for t in ACCELERATOR_TYPES if t.lower() == self.type.strip().lower()), "Other")
        what = f"accelerator record of VM {self.associated_record}"
        if not (1 <= self.measurement_month <= 12 and 2000 <= self.measurement_year <= 9999):
            raise BadRecord(f"{what}: no such month {self.measurement_year}-{self.measurement_month}")
        data: Dict[str, Any] = {
            "MeasurementMonth": int(self.measurement_month),
            "MeasurementYear": int(self.measurement_year),
            "AssociatedRecordType": "cloud",
            "AssociatedRecord": wire_text(self.associated_record),
            "GlobalUserName": wire_text(self.global_user_name) if self.global_user_name else None,
            "FQAN": wire_text(self.fqan),
            "SiteName": wire_text(self.site_name),
            "Count": json_number(wire_decimal(self.count, f"{what}: Count")),
            "AvailableDuration": wire_count(self.available_duration, f"{what}: AvailableDuration"),
            "Type": kind,
        }
        if self.model:
            data["Model"] = wire_text(self.model)
        if not data["AssociatedRecord"] or not data["FQAN"] or not data["SiteName"]:
            raise BadRecord(f"accelerator record of VM {self.associated_record}: empty mandatory field")
        return data


STAR_NAMESPACE = "http://eu-emi.eu/namespaces/2011/02/storagerecord"


@dataclass(frozen=True)
class StorageRecord:
    """One volume's allocation within one calendar month (StAR), up to ``end_time``.

    ``record_id`` names volume and month: the APEL StAR table keeps one row per record id, so a
    per-month id keeps each month's row (one id per volume would overwrite the previous months).
    """

    record_id: str
    create_time: int
    storage_system: str
    site: str
    group: str  # the VO
    start_time: int
    end_time: int
    resource_capacity_used: int  # bytes
    local_user: Optional[str] = None
    local_group: Optional[str] = None
    user_identity: Optional[str] = None

    def as_xml(self) -> str:
        """The ``<sr:StorageUsageRecord>`` element."""
        if self.end_time < self.start_time:
            raise BadRecord(f"storage record {self.record_id}: EndTime before StartTime")

        def element(tag: str, value: Optional[str]) -> str:
            return f"<sr:{tag}>{escape(wire_text(value))}</sr:{tag}>" if value else ""

        def when(epoch: int, tag: str) -> str:
            return iso_utc(parse_time(wire_count(epoch, f"storage record {self.record_id}: {tag}", MAX_EPOCH)))

        if not wire_text(self.record_id) or not wire_text(self.storage_system):
            raise BadRecord(f"storage record {self.record_id!r}: no value for mandatory RecordId or StorageSystem")

        capacity = wire_count(self.resource_capacity_used, f"storage record {self.record_id}: ResourceCapacityUsed")
        identity = (element("LocalUser", self.local_user) + element("LocalGroup", self.local_group)
                    + element("UserIdentity", self.user_identity) + element("Group", self.group))
        return ("<sr:StorageUsageRecord>"
                f"<sr:RecordIdentity sr:createTime={quoteattr(when(self.create_time, 'CreateTime'))} "
                f"sr:recordId={quoteattr(wire_text(self.record_id))}/>"
                + element("StorageSystem", self.storage_system)
                + element("Site", self.site)
                + f"<sr:SubjectIdentity>{identity}</sr:SubjectIdentity>"
                + f"<sr:StartTime>{when(self.start_time, 'StartTime')}</sr:StartTime>"
                + f"<sr:EndTime>{when(self.end_time, 'EndTime')}</sr:EndTime>"
                + f"<sr:ResourceCapacityUsed>{capacity}</sr:ResourceCapacityUsed>"
                + "</sr:StorageUsageRecord>")
