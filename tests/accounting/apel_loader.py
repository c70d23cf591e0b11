"""An APEL-server-like loader for tests: parses messages the way the APEL server does and
stores cloud records with its per-VM-per-month rules, so a test fails on any record the
server would reject or misfile.

Parsing follows apel/db/loader/record_factory.py and apel/db/records/{record,cloud}.py:
header ``Type: version`` (type = text before ``:``), body split on ``%%`` (empty parts
ignored), each line ``Key: value`` split on the first ``:``, unknown key -> reject, ints /
decimals / datetimes (epoch or ISO) type-checked, ``none``/``null``/empty read as NULL,
mandatory VMUUID, SiteName, StartTime.  On top of the server we check what EGI needs and
the server does not: ASCII only (apel/ssm decodes messages as ASCII), FQAN present,
Status one of started/completed/suspended, EndTime exactly for completed records, values
within the width of their database column.  JSON messages are checked against schemas
written from the APEL accelerator and IP record definitions; StAR against the StAR parser's
mandatory fields.

``CloudDB`` applies ReplaceCloudRecord: MeasurementTime = EndTime for completed records,
else RecordCreateTime (else StartTime + SuspendDuration + WallDuration); one row per
(VMUUID, month, year), replaced only by a later measurement; ``monthly_usage`` subtracts
each VM's previous row like SummariseVMs.

Test dependency: ``jsonschema`` (today pulled in by openstacksdk; worth listing in the test extras).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple
from xml.dom import minidom

import jsonschema

STAR_NS = "http://eu-emi.eu/namespaces/2011/02/storagerecord"

CLOUD_KEYS = {
    "RecordCreateTime", "VMUUID", "SiteName", "CloudComputeService", "MachineName", "LocalUserId", "LocalGroupId",
    "GlobalUserName", "FQAN", "Status", "StartTime", "EndTime", "SuspendDuration", "WallDuration", "CpuDuration",
    "CpuCount", "NetworkType", "NetworkInbound", "NetworkOutbound", "PublicIPCount", "Memory", "Disk",
    "BenchmarkType", "Benchmark", "StorageRecordId", "ImageId", "CloudType",
}
CLOUD_IGNORED = {"UpdateTime", "MeasurementTime", "MeasurementMonth", "MeasurementYear"}
CLOUD_INTS = {"SuspendDuration", "WallDuration", "CpuDuration", "NetworkInbound", "NetworkOutbound", "PublicIPCount",
              "Memory", "Disk"}
CLOUD_DECIMALS = {"CpuCount", "Benchmark"}
CLOUD_TIMES = {"RecordCreateTime", "StartTime", "EndTime"}
CLOUD_MANDATORY = {"VMUUID", "SiteName", "StartTime"}
COLUMN_WIDTH = {"BenchmarkType": 50}
NULLS = {"none", "null", ""}

ACCELERATOR_SCHEMA: Dict[str, Any] = {
    "type": "object",
    "required": ["Type", "Version", "UsageRecords"],
    "additionalProperties": False,
    "properties": {
        "Type": {"const": "APEL-accelerator-message"},
        "Version": {"enum": ["0.1"]},
        "UsageRecords": {
            "type": "array", "minItems": 1, "maxItems": 1000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["MeasurementMonth", "MeasurementYear", "AssociatedRecordType", "AssociatedRecord",
                             "FQAN", "SiteName", "Count", "AvailableDuration", "Type"],
                "properties": {
                    "MeasurementMonth": {"type": "integer", "minimum": 1, "maximum": 12},
                    "MeasurementYear": {"type": "integer", "minimum": 2000},
                    "AssociatedRecordType": {"enum": ["cloud", "job"]},
                    "AssociatedRecord": {"type": "string", "minLength": 1},
                    "GlobalUserName": {"type": ["string", "null"]},
                    "FQAN": {"type": "string", "minLength": 1},
                    "SiteName": {"type": "string", "minLength": 1},
                    "Count": {"type": "number"},
                    "Cores": {"type": ["integer", "null"]},
                    "ActiveDuration": {"type": ["integer", "null"]},
                    "AvailableDuration": {"type": "integer", "minimum": 0},
                    "BenchmarkType": {"type": ["string", "null"]},
                    "Benchmark": {"type": ["number", "null"]},
                    "Type": {"enum": ["GPU", "FPGA", "Other"]},
                    "Model": {"type": "string"},
                },
            },
        },
    },
}

IP_SCHEMA: Dict[str, Any] = {
    "type": "object",
    "required": ["Type", "Version", "UsageRecords"],
    "additionalProperties": False,
    "properties": {
        "Type": {"const": "APEL Public IP message"},
        "Version": {"enum": ["v0.2"]},
        "UsageRecords": {
            "type": "array", "minItems": 1, "maxItems": 1000,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["MeasurementTime", "SiteName", "CloudType", "LocalUser", "LocalGroup", "GlobalUserName",
                             "FQAN", "IPVersion", "IPCount"],
                "properties": {
                    "MeasurementTime": {"type": "integer"},
                    "SiteName": {"type": "string", "minLength": 1},
                    "CloudComputeService": {"type": ["string", "null"]},
                    "CloudType": {"type": "string"},
                    "LocalUser": {"type": "string", "minLength": 1},
                    "LocalGroup": {"type": "string", "minLength": 1},
                    "GlobalUserName": {"type": "string", "minLength": 1},
                    "FQAN": {"type": "string", "minLength": 1},
                    "IPVersion": {"enum": [4, 6]},
                    "IPCount": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}

STAR_MANDATORY = ("RecordIdentity", "StorageSystem", "StartTime", "EndTime", "ResourceCapacityUsed")


class Rejected(Exception):
    """The server would send the whole message to its reject queue."""


def _epoch(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        parsed = datetime.strptime(value.replace("Z", "UTC"), "%Y-%m-%dT%H:%M:%S%Z")
    except ValueError:
        raise Rejected(f"Unknown datetime format!: {value} ({key})") from None
    return int(parsed.replace(tzinfo=timezone.utc).timestamp())


def parse_cloud_record(text: str) -> Dict[str, Any]:
    record: Dict[str, Any] = {}
    for line in text.strip().splitlines():
        if ":" not in line:
            raise Rejected(f"Record contains a line without a key-value pair: {line}")
        key, value = (part.strip() for part in line.split(":", 1))
        if key in CLOUD_IGNORED:
            continue
        if key not in CLOUD_KEYS:
            raise Rejected(f"Unknown field: {key}")
        if key in record:
            raise Rejected(f"field {key} given twice (the server would keep the last silently)")
        if value.lower() in NULLS:
            record[key] = None
            continue
        if len(value) > COLUMN_WIDTH.get(key, 255):
            raise Rejected(f"{key} longer than its column ({len(value)} chars)")
        if key in CLOUD_INTS:
            try:
                record[key] = int(value)
            except ValueError:
                raise Rejected(f"Invalid int value {value} in field {key}") from None
            if record[key] < 0:
                raise Rejected(f"negative {key}")
        elif key in CLOUD_DECIMALS:
            try:
                record[key] = float(value)
            except ValueError:
                raise Rejected(f"Invalid float value {value} in field {key}") from None
        elif key in CLOUD_TIMES:
            record[key] = _epoch(value, key)
        else:
            record[key] = value
    for key in CLOUD_MANDATORY:
        if record.get(key) is None:
            raise Rejected(f"Mandatory field {key} not specified")
    # what EGI needs beyond the server's own checks
    if not record.get("FQAN"):
        raise Rejected("no FQAN: usage would be booked to no VO")
    if record.get("Status") not in ("started", "completed", "suspended"):
        raise Rejected(f"Status {record.get('Status')!r} not one of started/completed/suspended")
    if (record["Status"] == "completed") != (record.get("EndTime") is not None):
        raise Rejected("EndTime must be given exactly for completed records")
    if record.get("EndTime") is not None and record["EndTime"] < record["StartTime"]:
        raise Rejected("EndTime before StartTime")
    return record


@dataclass
class Message:
    kind: str  # cloud, ip, accelerator, storage
    records: List[Dict[str, Any]]


def parse_message(data: Any) -> Message:
    """Parse one message as the APEL server would; Rejected if it would be rejected."""
    raw = data if isinstance(data, bytes) else str(data).encode("utf-8")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise Rejected("message is not ASCII (apel/ssm decodes messages as ASCII)") from None
    text = text.strip()
    if text.startswith("<"):
        return Message("storage", _parse_star(text))
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise Rejected(f"Malformed JSON: {exc}") from None
        kind = body.get("Type") if isinstance(body, dict) else None
        schema = {"APEL-accelerator-message": ACCELERATOR_SCHEMA, "APEL Public IP message": IP_SCHEMA}.get(kind)
        if schema is None:
            raise Rejected(f"Unsupported JSON message type: {kind}")
        try:
            jsonschema.validate(body, schema)
        except jsonschema.ValidationError as exc:
            raise Rejected(f"JSON message invalid against {kind} schema: {exc.message}") from None
        return Message("accelerator" if kind == "APEL-accelerator-message" else "ip", body["UsageRecords"])
    lines = text.splitlines()
    header = lines.pop(0)
    if ":" not in header:
        raise Rejected(f"Message header is incorrect: {header}")
    if header[: header.index(":")].strip() != "APEL-cloud-message":
        raise Rejected(f"Message type {header} not recognised.")
    records = [parse_cloud_record(part) for part in "\n".join(lines).strip().split("%%")
               if part != "" and not part.isspace()]
    if not records:
        raise Rejected("message without records")
    return Message("cloud", records)


def _parse_star(text: str) -> List[Dict[str, Any]]:
    try:
        doc = minidom.parseString(text)
    except Exception as exc:  # noqa: BLE001 - expat errors
        raise Rejected(f"XML not well-formed: {exc}") from None
    if doc.documentElement.namespaceURI != STAR_NS:
        raise Rejected("XML format not recognised.")
    nodes = doc.getElementsByTagNameNS(STAR_NS, "StorageUsageRecord")
    if not nodes:
        raise Rejected("File does not contain StAR records!")
    records = []
    for node in nodes:
        record: Dict[str, Any] = {}
        for tag in STAR_MANDATORY:
            found = node.getElementsByTagNameNS(STAR_NS, tag)
            if not found:
                raise Rejected(f"Mandatory field {tag} not specified")
        identity = node.getElementsByTagNameNS(STAR_NS, "RecordIdentity")[0]
        record["RecordId"] = identity.getAttributeNS(STAR_NS, "recordId")
        record["CreateTime"] = identity.getAttributeNS(STAR_NS, "createTime")
        if not record["RecordId"] or not record["CreateTime"]:
            raise Rejected("RecordIdentity without recordId/createTime")
        for tag in ("StorageSystem", "Site", "LocalUser", "LocalGroup", "UserIdentity", "Group", "StartTime",
                    "EndTime", "ResourceCapacityUsed"):
            found = node.getElementsByTagNameNS(STAR_NS, tag)
            if found:
                record[tag] = "".join(child.data for child in found[0].childNodes if child.nodeType == child.TEXT_NODE)
        for tag in ("CreateTime", "StartTime", "EndTime"):
            _epoch(record[tag], tag)
        try:
            record["ResourceCapacityUsed"] = int(record["ResourceCapacityUsed"])
        except ValueError:
            raise Rejected("ResourceCapacityUsed is not an integer") from None
        records.append(record)
    return records


def _month_of(epoch: int) -> Tuple[int, int]:
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.year, moment.month


class CloudDB:
    """CloudRecords as the APEL server keeps them, and its monthly summary."""

    def __init__(self) -> None:
        self.rows: Dict[Tuple[str, int, int], Dict[str, Any]] = {}

    def load_message(self, data: Any) -> Message:
        message = parse_message(data)
        if message.kind == "cloud":
            for record in message.records:
                self.load(record)
        return message

    def load(self, record: Dict[str, Any]) -> None:
        if record["Status"] == "completed":
            measured = record["EndTime"]
        elif record.get("RecordCreateTime") is not None:
            measured = record["RecordCreateTime"]
        else:
            measured = record["StartTime"] + (record.get("SuspendDuration") or 0) + (record.get("WallDuration") or 0)
        year, month = _month_of(measured)
        key = (record["VMUUID"], year, month)
        current = self.rows.get(key)
        if current is None or measured > current["_measured"]:
            self.rows[key] = dict(record, _measured=measured)

    def monthly_usage(self, field: str = "WallDuration") -> Dict[Tuple[str, int, int], int]:
        """(VMUUID, year, month) -> usage in that month (this row minus the VM's previous row)."""
        usage: Dict[Tuple[str, int, int], int] = {}
        by_vm: Dict[str, List[Tuple[int, Tuple[str, int, int], Dict[str, Any]]]] = {}
        for key, row in self.rows.items():
            by_vm.setdefault(key[0], []).append((row["_measured"], key, row))
        for rows in by_vm.values():
            previous = 0
            for _, key, row in sorted(rows):
                value = row.get(field) or 0
                usage[key] = value - previous
                previous = value
        return usage

    def latest(self, vm_uuid: str) -> Optional[Dict[str, Any]]:
        rows = [row for key, row in self.rows.items() if key[0] == vm_uuid]
        return max(rows, key=lambda row: row["_measured"]) if rows else None


def read_queue(path: Any, remove: bool = False) -> List[bytes]:
    """The queue's messages read with the dirq library exactly as apel/ssm's sender does."""
    from dirq.QueueSimple import QueueSimple

    queue = QueueSimple(str(path))
    messages = []
    name = queue.first()
    while name:
        if queue.lock(name):
            messages.append(queue.get(name))
            if remove:
                queue.remove(name)
            else:
                queue.unlock(name)
        name = queue.next()
    return messages
