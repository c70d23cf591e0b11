"""A strict RFC 2849 reader of LDIF content records, for tests: anything else is an LdifSyntaxError.

Independent of our writer: it unfolds continuation lines, requires ``dn:`` first in each record,
accepts only SAFE-STRING plain values and canonical base64 of UTF-8, and no ``<`` URLs.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Dict, List, Tuple

from ldap3.utils.dn import parse_dn

Entry = Tuple[str, List[Tuple[str, str]]]

_SAFE_STRING = re.compile(r"(?:[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*)?\Z")
_ATTRIBUTE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)(?:;[A-Za-z0-9-]+)*\Z")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}\Z")


class LdifSyntaxError(ValueError):
    """The text is not LDIF content as RFC 2849 defines it (the message names the line)."""


def _logical_lines(text: str) -> List[Tuple[int, str]]:
    if "\r" in text:
        raise LdifSyntaxError("carriage return in LDIF written with LF line ends")
    lines: List[Tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith(" "):
            if not lines or lines[-1][1] == "":
                raise LdifSyntaxError(f"line {number}: continuation without a line to continue")
            lines[-1] = (lines[-1][0], lines[-1][1] + line[1:])
        else:
            lines.append((number, line))
    return lines


def _value(number: int, line: str) -> Tuple[str, str]:
    attribute, colon, rest = line.partition(":")
    if not colon or not _ATTRIBUTE.match(attribute):
        raise LdifSyntaxError(f"line {number}: not an attribute line: {line[:60]!r}")
    if rest.startswith(":"):
        encoded = rest[1:].lstrip(" ")
        if not _BASE64.match(encoded) or len(encoded) % 4:
            raise LdifSyntaxError(f"line {number}: bad base64 value of {attribute}")
        try:
            return attribute, base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise LdifSyntaxError(f"line {number}: base64 value of {attribute} is not UTF-8: {exc}") from None
    if rest.startswith("<"):
        raise LdifSyntaxError(f"line {number}: URL values are not expected")
    plain = rest.lstrip(" ")
    if not _SAFE_STRING.match(plain):
        raise LdifSyntaxError(f"line {number}: value of {attribute} is not a SAFE-STRING: {plain[:60]!r}")
    return attribute, plain


def read_ldif(text: str) -> List[Entry]:
    """The records of ``text`` as (dn, [(attribute, value), ...]) in order."""
    records: List[List[Tuple[int, str]]] = [[]]
    for number, line in _logical_lines(text):
        if line == "":
            if records[-1]:
                records.append([])
        elif not line.startswith("#"):
            records[-1].append((number, line))
    result: List[Entry] = []
    for record in records:
        if not record:
            continue
        pairs = [_value(number, line) for number, line in record]
        if pairs[0][0].lower() != "dn":
            raise LdifSyntaxError(f"line {record[0][0]}: a record must start with dn:")
        if any(attribute.lower() == "dn" for attribute, _ in pairs[1:]):
            raise LdifSyntaxError(f"line {record[0][0]}: a second dn: in one record")
        result.append((pairs[0][1], pairs[1:]))
    return result


def dn_key(dn: str) -> Tuple[Tuple[str, str], ...]:
    """A DN as (attribute lower-cased, value) per RDN, parsed by ldap3."""
    return tuple((attribute.lower(), value) for attribute, value, _ in parse_dn(dn))


def as_entries(records: List[Entry]) -> Dict[Tuple[Tuple[str, str], ...], Dict[str, List[str]]]:
    """Records keyed by parsed DN, attributes lower-cased, values sorted (LDAP attributes are sets)."""
    result: Dict[Tuple[Tuple[str, str], ...], Dict[str, List[str]]] = {}
    for dn, pairs in records:
        attributes: Dict[str, List[str]] = {}
        for attribute, value in pairs:
            attributes.setdefault(attribute.lower(), []).append(value)
        result[dn_key(dn)] = {a: sorted(v) for a, v in attributes.items()}
    return result
