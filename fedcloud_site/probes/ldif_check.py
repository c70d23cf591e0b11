"""A streaming LDIF reader that checks what a BDII needs: whole records, DNs below the base, object classes.

Records are read one at a time (RFC 2849 folding, ``::`` base64 values, ``#`` comments), so a
large LDIF is never held in memory.  :func:`check_ldif` returns a summary with the problems found.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Tuple

from ..errors import FedcloudSiteError

_ATTRIBUTE = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*(?:;[A-Za-z0-9-]+)*|[0-9]+(?:\.[0-9]+)+)(::?|:<)(.*)$")
MAX_PROBLEMS = 20


class LdifSyntaxError(FedcloudSiteError, ValueError):
    pass


@dataclass
class LdifSummary:
    entries: int = 0
    object_classes: Counter = field(default_factory=Counter)
    service_ids: List[str] = field(default_factory=list)  # GLUE2ServiceID of GLUE2ComputingService entries
    problems: List[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def _lines(stream: BinaryIO) -> Iterator[Tuple[int, bytes]]:
    """Unfolded logical lines with their starting line number; b"" marks a record separator."""
    pending: List[bytes] = []
    start = 0
    for number, raw in enumerate(stream, 1):
        line = raw.rstrip(b"\r\n")
        if line.startswith(b" ") and pending:
            pending.append(line[1:])
            continue
        if pending:
            yield start, b"".join(pending)
            pending = []
        if not line:
            yield number, b""
        elif line.startswith(b"#"):
            continue
        elif line.startswith(b" "):
            raise LdifSyntaxError(f"line {number}: continuation line without a line to continue")
        else:
            pending, start = [line], number
    if pending:
        yield start, b"".join(pending)


def records(stream: BinaryIO) -> Iterator[Tuple[int, List[Tuple[str, bytes]]]]:
    """(line number, [(attribute, value), ...]) per record; the first pair is the DN."""
    current: List[Tuple[str, bytes]] = []
    first = 0
    for number, line in _lines(stream):
        if not line:
            if current:
                yield first, current
                current = []
            continue
        match = _ATTRIBUTE.match(line)
        if not match:
            raise LdifSyntaxError(f"line {number}: not an LDIF attribute line: {line[:60]!r}")
        name, kind, value = match.group(1).decode("ascii"), match.group(2), match.group(3)
        if kind == b"::":
            try:
                decoded = base64.b64decode(value.strip(), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise LdifSyntaxError(f"line {number}: {name}: invalid base64 value") from exc
        else:
            decoded = value[1:] if value.startswith(b" ") else value
        if not current:
            if name.lower() == "version":
                continue
            if name.lower() != "dn":
                raise LdifSyntaxError(f"line {number}: a record must start with dn:, got {name}:")
            first = number
        current.append((name, decoded))
    if current:
        yield first, current


def check_ldif(path: Path, base: str) -> LdifSummary:
    """Read ``path`` and report entries, object classes, computing services and problems."""
    summary = LdifSummary()
    suffix = "," + base.lower()
    seen: Dict[str, int] = {}
    with open(path, "rb") as stream:
        try:
            for number, record in records(stream):
                summary.entries += 1
                dn = record[0][1].decode("utf-8", "replace")
                if dn.lower() != base.lower() and not dn.lower().endswith(suffix):
                    summary.problem(f"line {number}: {dn} is not below {base}")
                if dn.lower() in seen:
                    summary.problem(f"line {number}: duplicate entry {dn} (first at line {seen[dn.lower()]})")
                seen.setdefault(dn.lower(), number)
                classes = [v.decode("utf-8", "replace") for k, v in record[1:] if k.lower() == "objectclass"]
                if not classes:
                    summary.problem(f"line {number}: {dn} has no objectClass")
                summary.object_classes.update(classes)
                if "GLUE2ComputingService" in classes:
                    summary.service_ids += [v.decode("utf-8", "replace") for k, v in record[1:]
                                            if k.lower() == "glue2serviceid"]
        except LdifSyntaxError as exc:
            summary.problem(str(exc))
    return summary
