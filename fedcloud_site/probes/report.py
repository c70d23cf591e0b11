"""Monitoring-plugin results: findings with a status, perfdata, and the one-line output.

Output follows the monitoring plugin convention (Nagios, Icinga, ARGO)::

    WARNING - accounting: oldest unsent message 7h ago (warning 6h); 3 projects up to date | 'queue_messages'=12;;;0

and the exit status is the status' value (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).  When
findings are combined the most severe wins, in the order CRITICAL > WARNING > UNKNOWN > OK: a
probe that could not check one part but found another part broken still reports the breakage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import List, Optional, Tuple


class Status(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


#: higher = more severe when findings are combined
_SEVERITY = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.CRITICAL: 3}


def worst(*statuses: Status) -> Status:
    """The most severe status (CRITICAL > WARNING > UNKNOWN > OK)."""
    return max(statuses, key=lambda s: _SEVERITY[s], default=Status.OK)


def format_duration(seconds: float) -> str:
    """``95`` -> ``1m35s``, ``90000`` -> ``1d1h``: short, for status lines."""
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds}s"
    parts: List[Tuple[int, str]] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append((amount, unit))
    return "".join(f"{amount}{unit}" for amount, unit in parts[:2])


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


@dataclass(frozen=True)
class Perf:
    """One performance data item: ``'label'=value[uom];[warn];[crit];[min];[max]``."""

    label: str
    value: float
    uom: str = ""
    warning: Optional[float] = None
    critical: Optional[float] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None

    def render(self) -> str:
        label = self.label.replace("'", "_").replace("=", "_")
        fields = [f"{_number(self.value)}{self.uom}"]
        for extra in (self.warning, self.critical, self.minimum, self.maximum):
            fields.append("" if extra is None else _number(extra))
        return f"'{label}'={';'.join(fields).rstrip(';')}"


@dataclass
class Finding:
    status: Status
    text: str


@dataclass
class Report:
    """Collects what a probe found; :meth:`line` renders it, :attr:`status` is the exit status."""

    name: str
    findings: List[Finding] = field(default_factory=list)
    perfdata: List[Perf] = field(default_factory=list)

    def add(self, status: Status, text: str) -> Status:
        self.findings.append(Finding(status, text))
        return status

    def ok(self, text: str) -> Status:
        return self.add(Status.OK, text)

    def warning(self, text: str) -> Status:
        return self.add(Status.WARNING, text)

    def critical(self, text: str) -> Status:
        return self.add(Status.CRITICAL, text)

    def unknown(self, text: str) -> Status:
        return self.add(Status.UNKNOWN, text)

    def perf(self, label: str, value: float, uom: str = "", warning: Optional[float] = None,
             critical: Optional[float] = None, minimum: Optional[float] = None,
             maximum: Optional[float] = None) -> None:
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return
        self.perfdata.append(Perf(label, value, uom, warning, critical, minimum, maximum))

    def check_age(self, what: str, age: float, warning: float, critical: float) -> Status:
        """A finding for an age (seconds; higher is worse) against its thresholds."""
        text = f"{what} {format_duration(age)} ago"
        if age >= critical:
            return self.critical(f"{text} (critical {format_duration(critical)})")
        if age >= warning:
            return self.warning(f"{text} (warning {format_duration(warning)})")
        return self.ok(text)

    def check_remaining(self, what: str, remaining: float, warning: float, critical: float) -> Status:
        """A finding for time left (seconds; lower is worse), e.g. until a certificate expires."""
        if remaining <= 0:
            return self.critical(f"{what} expired {format_duration(-remaining)} ago")
        text = f"{what} expires in {format_duration(remaining)}"
        if remaining <= critical:
            return self.critical(f"{text} (critical {format_duration(critical)})")
        if remaining <= warning:
            return self.warning(f"{text} (warning {format_duration(warning)})")
        return self.ok(text)

    @property
    def status(self) -> Status:
        if not self.findings:
            return Status.UNKNOWN
        return worst(*(f.status for f in self.findings))

    def line(self) -> str:
        """``STATUS - name: findings | perfdata`` (problems first, most severe first)."""
        ordered = sorted(self.findings, key=lambda f: -_SEVERITY[f.status])
        text = "; ".join(f.text for f in ordered) or "nothing was checked"
        text = text.replace("|", "/").replace("\n", " ")
        line = f"{self.status.name} - {self.name}: {text}"
        if self.perfdata:
            line += " | " + " ".join(p.render() for p in self.perfdata)
        return line
