"""Reading OpenNebula documents: template attributes, VM pool bodies, history records, quotas, users."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ...timeutil import parse_time
from ..base import Accelerator, BadCloudData, Quota, RunPeriod
from ..flavor_specs import ACCELERATOR_KEYS, BENCHMARK_TYPE_KEY, BENCHMARK_VALUE_KEY

_PRIVATE_NETS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                   "100.64.0.0/10", "fc00::/7", "fe80::/10")]
_PCI_VENDORS = {"10de": "NVIDIA", "1002": "AMD", "8086": "Intel"}
_ACCELERATOR_ATTRIBUTES = dict(zip(("ACCELERATOR_TYPE", "ACCELERATOR_VENDOR", "ACCELERATOR_MODEL",
                                    "ACCELERATOR_NUMBER"), ACCELERATOR_KEYS))


def attribute_name(key: str) -> str:
    """A property key as an OpenNebula attribute name (upper case, ``[A-Z0-9_]`` only)."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in key.upper())


def template_xml(attributes: Mapping[str, Any]) -> str:
    """A template in the XML form oned accepts (values in CDATA, so any text survives)."""
    parts = ["<TEMPLATE>"]
    for key, value in attributes.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                inner = "".join(f"<{attribute_name(k)}>{_cdata(v)}</{attribute_name(k)}>" for k, v in item.items())
                parts.append(f"<{attribute_name(key)}>{inner}</{attribute_name(key)}>")
            else:
                parts.append(f"<{attribute_name(key)}>{_cdata(item)}</{attribute_name(key)}>")
    parts.append("</TEMPLATE>")
    return "".join(parts)


def _cdata(value: Any) -> str:
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def scalars(template: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    return {str(k): str(v) for k, v in (template or {}).items() if isinstance(v, str)}


def vectors(template: Optional[Mapping[str, Any]], name: str) -> List[Mapping[str, Any]]:
    value = (template or {}).get(name)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Mapping)]


def child_text(node: Any, name: str) -> Optional[str]:
    """Text of a child element of an lxml node kept by the pyone bindings."""
    if node is None:
        return None
    value = node.findtext(name)
    return value.strip() if value is not None else None


def epoch_time(value: Any) -> Optional[datetime]:
    if value in (None, "", 0, "0"):
        return None
    return parse_time(int(value))


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if any(ip in net for net in _PRIVATE_NETS if net.version == ip.version):
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def pci_accelerator(template: Optional[Mapping[str, Any]]) -> Optional[Accelerator]:
    """A GPU from the PCI devices of display class (03xx) a template asks for."""
    gpus = [p for p in vectors(template, "PCI") if str(p.get("CLASS", "")).lower().startswith("03")]
    if not gpus:
        return None
    first = gpus[0]
    vendor_id = str(first.get("VENDOR", "")).lower()
    vendor = str(first.get("VENDOR_NAME") or _PCI_VENDORS.get(vendor_id, vendor_id or "unknown"))
    model = str(first.get("DEVICE_NAME") or first.get("DEVICE") or "unknown")
    return Accelerator(type="GPU", vendor=vendor, model=model, count=len(gpus))


def template_specs(template: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """Template attributes as flavour extra specs, with the accelerator and benchmark attributes
    renamed to the :mod:`.flavor_specs` keys."""
    specs = scalars(template)
    for attr, key in _ACCELERATOR_ATTRIBUTES.items():
        if attr in specs:
            specs[key] = specs[attr]
    if "BENCHMARK_TYPE" in specs:
        specs[BENCHMARK_TYPE_KEY] = specs["BENCHMARK_TYPE"]
    if "BENCHMARK_VALUE" in specs:
        specs[BENCHMARK_VALUE_KEY] = specs["BENCHMARK_VALUE"]
    return specs


def as_number(value: Any, what: str, where: str, default: Optional[float] = None) -> float:
    if value in (None, ""):
        if default is None:
            raise BadCloudData(f"{where}: {what} missing")
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise BadCloudData(f"{where}: {what} {value!r} is not a number") from exc


def _quota_value(limit: Any, default: Any) -> Optional[int]:
    """An OpenNebula quota limit: -1 = the default quota, -2 = unlimited."""
    try:
        value = float(limit)
    except (TypeError, ValueError):
        return None
    if value == -1:
        try:
            value = float(default)
        except (TypeError, ValueError):
            return None
    if value < 0:
        return None
    return int(value)


class Record(NamedTuple):
    """The times of a HISTORY record (a VM's stay on a host); 0: not (yet) happened."""

    rstime: int  # running started
    retime: int  # running ended
    etime: int  # the record closed
    hid: int  # host
    stime: int  # the record opened


#: vid -> SEQ -> record
Histories = Dict[int, Dict[int, Record]]


def history_record(node: Any) -> Record:
    """The :class:`Record` of a HISTORY element."""
    return Record(int(child_text(node, "RSTIME") or 0), int(child_text(node, "RETIME") or 0),
                  int(child_text(node, "ETIME") or 0), int(child_text(node, "HID") or -1),
                  int(child_text(node, "STIME") or 0))


def window_outdated(records: Mapping[int, Record], since: int) -> bool:
    """True when records read earlier for the window [since, now] cannot be right any more: one is
    missing that may have ended after ``since`` (the record after it opened then or later; a record
    ends no later than the next one opens), or one still open is not the VM's last."""
    present = sorted(records)
    for seq in range(present[-1] + 1 if present else 0):
        if seq not in records and records[next(p for p in present if p > seq)].stime >= since:
            return True
    return any(records[seq].etime == 0 for seq in present[:-1])


def is_complete(records: Mapping[int, Record]) -> bool:
    """True when the records run from SEQ 0 without gaps (or there are none)."""
    return not records or max(records) + 1 == len(records)


def run_periods_of(records: Mapping[int, Record]) -> Tuple[RunPeriod, ...]:
    """Running time of each record: RSTIME to RETIME (or to ETIME if the record closed without one)."""
    periods = []
    for seq in sorted(records):
        rstime, retime, etime = records[seq].rstime, records[seq].retime, records[seq].etime
        if not rstime:
            continue  # never reached RUNNING on that host
        end = retime or etime or None
        periods.append(RunPeriod(start=parse_time(rstime), end=parse_time(end) if end else None))
    return tuple(periods)


def first_run_of(records: Mapping[int, Record]) -> Dict[str, Any]:
    """``ever_ran`` and ``first_ran_at`` of a VM with these history records: a VM ran once a record has an
    RSTIME; it never ran when none has and the records are all there (none at all: never deployed)."""
    started = [r.rstime for r in records.values() if r.rstime]
    if started:
        return {"ever_ran": True, "first_ran_at": parse_time(min(started)) if is_complete(records) else None}
    return {"ever_ran": False if is_complete(records) else None, "first_ran_at": None}


def element_dict(element: Any) -> Dict[str, Any]:
    """A TEMPLATE element as pyone shapes it: vector attributes as dicts, repeated names as lists."""
    result: Dict[str, Any] = {}
    if element is None:
        return result
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments
        value: Any = {sub.tag: sub.text or "" for sub in child if isinstance(sub.tag, str)} if len(child) \
            else (child.text or "")
        if child.tag in result:
            current = result[child.tag]
            result[child.tag] = (current if isinstance(current, list) else [current]) + [value]
        else:
            result[child.tag] = value
    return result


class PoolVM:
    """A ``<VM>`` of a pool page, read straight from the XML."""

    __slots__ = ("node", "ID", "UID", "GID", "NAME", "STATE", "LCM_STATE", "STIME", "ETIME", "_template",
                 "_user_template")

    def __init__(self, node: Any) -> None:
        self.node = node
        raw_id = child_text(node, "ID")
        try:
            self.ID = int(raw_id or "")
        except ValueError as exc:
            raise BadCloudData(f"OpenNebula VM pool: a VM without a valid ID ({raw_id!r}, "
                               f"name {child_text(node, 'NAME')!r})") from exc
        where = f"OpenNebula VM {self.ID}"
        values = {}
        for name in ("UID", "GID", "STATE", "LCM_STATE", "STIME", "ETIME"):
            text = child_text(node, name)
            try:
                values[name] = int(text or "")
            except ValueError as exc:
                raise BadCloudData(f"{where}: {name} {text!r} is not a number") from exc
        self.UID, self.GID = values["UID"], values["GID"]
        self.STATE, self.LCM_STATE = values["STATE"], values["LCM_STATE"]
        self.STIME, self.ETIME = values["STIME"], values["ETIME"]
        self.NAME = child_text(node, "NAME") or ""
        self._template: Optional[Dict[str, Any]] = None
        self._user_template: Optional[Dict[str, Any]] = None

    @property
    def TEMPLATE(self) -> Dict[str, Any]:  # noqa: N802 - OpenNebula's element name
        """Read on first use: listings of one project skip the other projects' VMs unread."""
        if self._template is None:
            self._template = element_dict(self.node.find("TEMPLATE"))
        return self._template

    @property
    def USER_TEMPLATE(self) -> Dict[str, Any]:  # noqa: N802 - OpenNebula's element name
        if self._user_template is None:
            self._user_template = element_dict(self.node.find("USER_TEMPLATE"))
        return self._user_template

    def records(self) -> Dict[int, Record]:
        try:
            return {int(child_text(h, "SEQ") or ""): history_record(h)
                    for h in self.node.iterfind("HISTORY_RECORDS/HISTORY")}
        except ValueError as exc:
            raise BadCloudData(f"OpenNebula VM {self.ID}: unreadable history record: {exc}") from exc


def vm_quota(node: Any, defaults: Any) -> Quota:
    """The VM quota under ``node`` (limits -1 resolved from ``defaults``), read from the XML: the
    bindings type quota elements differently in each document."""
    if node is None:
        return Quota()

    def get(name: str) -> Optional[int]:
        limit = child_text(node, f"VM_QUOTA/VM/{name}")
        default = child_text(defaults, f"VM_QUOTA/VM/{name}") if defaults is not None else None
        return _quota_value(limit if limit is not None else "-1", default if default is not None else "-2")

    return Quota(instances=get("VMS"), cores=get("CPU"), ram_mb=get("MEMORY"))


def user_quota(node: Any, defaults: Any) -> Optional[Quota]:
    """A user's own VM limits; None when the user has no VM quota of its own."""
    if node is None or node.find("VM_QUOTA/VM") is None:
        return None
    return vm_quota(node, defaults)


def quota_holds(current: Optional[Quota], wanted: Quota) -> bool:
    """True when every limit ``wanted`` sets is already in force."""
    if current is None:
        return False
    return all(getattr(wanted, f) is None or getattr(current, f) == getattr(wanted, f)
               for f in ("instances", "cores", "ram_mb"))


def escape_dn(dn: str) -> str:
    """A DN as oned's x509 auth driver stores and compares it: each blank as ``\\`` + its hex code."""
    return re.sub(r"\s", lambda m: "\\" + format(ord(m.group(0)), "x"), dn)


def unescape_dn(dn: str) -> str:
    return re.sub(r"\\[0-9a-f]{2}", lambda m: chr(int(m.group(0)[1:], 16)), dn)


def checked_dns(dns: List[str]) -> List[str]:
    """``dns`` unchanged, or :class:`BadCloudData` when one holds ``|``: OpenNebula keeps a user's DNs as one
    ``|``-separated string (x509 password, ``X509_DN``), so such a DN would add a DN nobody was given."""
    for dn in dns:
        if "|" in dn:
            raise BadCloudData(f"X.509 DN {dn!r} contains '|', which OpenNebula reads as a separator between DNs: "
                               f"refused (it would let the holder of another DN log in)")
    return dns


def x509_password(dns: List[str]) -> str:
    """The x509 driver's password for these DNs: escaped, ``|``-separated (a DN holding ``|`` is refused)."""
    return "|".join(escape_dn(dn) for dn in checked_dns(dns))


def user_dns(raw: Any) -> List[str]:
    """X.509 DNs of a user: TEMPLATE/X509_DN, else the password of the x509 auth driver (``|``-separated)."""
    t = raw.TEMPLATE or {}
    text = t.get("X509_DN") if isinstance(t.get("X509_DN"), str) else None
    if not text and str(raw.AUTH_DRIVER) == "x509":
        return [unescape_dn(dn) for dn in str(raw.PASSWORD or "").split("|") if dn]
    return [dn for dn in (text or "").split("|") if dn]
