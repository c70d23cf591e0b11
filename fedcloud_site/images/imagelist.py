"""Strict parsing of HEPiX image lists (``hv:imagelist`` JSON) into typed records.

List-level problems (bad JSON, a missing required key, a value of the wrong type) reject the whole list with
an :class:`ImageListError` naming the key. A bad *image entry* does not reject its list: it is reported in
:attr:`ImageList.invalid` (naming ``hv:images[N]`` and its ``dc:identifier`` when it has one), so that the
list's other images are still served and the bad entry's registered image is left alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import FedcloudSiteError
from ..timeutil import parse_time

_SHA512 = re.compile(r"^[0-9a-fA-F]{128}$")
_ASCII_INTEGER = re.compile(r"[0-9]{1,18}")
#: C0 controls but TAB/LF/CR, DEL, C1 controls and lone surrogates: no list field may carry them
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class ImageListError(FedcloudSiteError, ValueError):
    """The list cannot be used; the message names the offending key or entry."""


@dataclass(frozen=True)
class Endorser:
    dn: str
    ca: str
    creator: str = ""
    email: str = ""


@dataclass(frozen=True)
class ImageEntry:
    """One ``hv:image`` of a list."""

    identifier: str
    uri: str
    size: int
    sha512: str  # lower-case hex
    version: str
    title: str
    description: str = ""
    format: str = ""  # hv:format as given (unreliable; the real format is detected)
    hypervisor: str = ""
    arch: str = ""
    os: str = ""
    osname: str = ""
    osversion: str = ""
    comments: str = ""
    mpuri: str = ""
    base_mpuri: str = ""
    appid: str = ""
    expires: Optional[datetime] = None
    ram_minimum_mb: int = 0
    core_minimum: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now


@dataclass(frozen=True)
class InvalidEntry:
    """An image entry that failed validation; ``identifier`` when it had a usable one."""

    index: int
    identifier: Optional[str]
    problem: str

    def __str__(self) -> str:
        ident = f" (dc:identifier {self.identifier})" if self.identifier else ""
        return f"hv:images[{self.index}]{ident}: {self.problem}"


@dataclass(frozen=True)
class ImageList:
    identifier: str
    version: str
    created: Optional[datetime]
    expires: datetime
    endorser: Endorser
    images: Tuple[ImageEntry, ...]
    title: str = ""
    description: str = ""
    source: str = ""
    uri: str = ""
    vo: str = ""
    invalid: Tuple[InvalidEntry, ...] = ()

    def expired(self, now: datetime) -> bool:
        return self.expires <= now


def _no_duplicate_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ImageListError(f"duplicate key {key!r} in a JSON object")
        result[key] = value
    return result


def _text(data: Mapping[str, Any], key: str, where: str, required: bool = True, default: str = "") -> str:
    if key not in data or data[key] is None:
        if required:
            raise ImageListError(f"{where}: required key {key!r} missing")
        return default
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ImageListError(f"{where}: {key} must be a string, got {type(value).__name__}")
    text = str(value).strip()
    bad = _FORBIDDEN_CHARS.search(text)
    if bad:
        raise ImageListError(f"{where}: {key} contains the control character U+{ord(bad.group(0)):04X} "
                             f"(values reach hook environments, cloud properties and logs)")
    if required and not text:
        raise ImageListError(f"{where}: {key} is empty")
    return text


def _time(data: Mapping[str, Any], key: str, where: str, required: bool) -> Optional[datetime]:
    text = _text(data, key, where, required)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ImageListError(f"{where}: {key} is not an ISO 8601 time: {text!r}") from exc


def _int(data: Mapping[str, Any], key: str, where: str, required: bool) -> int:
    text = _text(data, key, where, required)
    if not text:
        return 0
    if not _ASCII_INTEGER.fullmatch(text):
        raise ImageListError(f"{where}: {key} must be a non-negative integer (at most 18 ASCII digits), "
                             f"got {text!r}")
    return int(text)


def _url(data: Mapping[str, Any], key: str, where: str, required: bool) -> str:
    text = _text(data, key, where, required)
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc) \
            or any(c.isspace() for c in text):
        raise ImageListError(f"{where}: {key} is not a well-formed http(s) URL: {text!r}")
    return text


def parse_image(raw: Any, where: str) -> ImageEntry:
    """One ``{"hv:image": {...}}`` element; :class:`ImageListError` names the key at fault."""
    if not isinstance(raw, dict) or not isinstance(raw.get("hv:image"), dict):
        raise ImageListError(f"{where}: expected an object {{\"hv:image\": {{...}}}}")
    image = raw["hv:image"]
    sha512 = _text(image, "sl:checksum:sha512", where)
    if not _SHA512.match(sha512):
        raise ImageListError(f"{where}: sl:checksum:sha512 is not 128 hexadecimal digits")
    size = _int(image, "hv:size", where, True)
    if size <= 0:
        raise ImageListError(f"{where}: hv:size must be positive")
    identifier = _text(image, "dc:identifier", where)
    return ImageEntry(
        identifier=identifier, uri=_url(image, "hv:uri", where, True), size=size, sha512=sha512.lower(),
        version=_text(image, "hv:version", where), title=_text(image, "dc:title", where, False, identifier),
        description=_text(image, "dc:description", where, False), format=_text(image, "hv:format", where, False),
        hypervisor=_text(image, "hv:hypervisor", where, False), arch=_text(image, "sl:arch", where, False),
        os=_text(image, "sl:os", where, False), osname=_text(image, "sl:osname", where, False),
        osversion=_text(image, "sl:osversion", where, False), comments=_text(image, "sl:comments", where, False),
        mpuri=_url(image, "ad:mpuri", where, False), base_mpuri=_url(image, "ad:base_mpuri", where, False),
        appid=_text(image, "ad:appid", where, False), expires=_time(image, "dc:date:expires", where, False),
        ram_minimum_mb=_int(image, "hv:ram_minimum", where, False),
        core_minimum=_int(image, "hv:core_minimum", where, False), raw=image)


def parse_image_list(data: bytes) -> ImageList:
    """Parse the (already signature-checked) JSON payload of an image list."""
    try:
        document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError as exc:
        raise ImageListError(f"list is not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ImageListError(f"list is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise ImageListError("list nests JSON arrays/objects too deeply to be an image list") from exc
    if not isinstance(document, dict) or set(document) != {"hv:imagelist"} or not isinstance(
            document["hv:imagelist"], dict):
        raise ImageListError("expected one top-level object {\"hv:imagelist\": {...}}")
    body = document["hv:imagelist"]
    where = "hv:imagelist"
    endorser_raw = body.get("hv:endorser")
    if not isinstance(endorser_raw, dict) or not isinstance(endorser_raw.get("hv:x509"), dict):
        raise ImageListError(f"{where}: hv:endorser.hv:x509 missing or not an object")
    x509 = endorser_raw["hv:x509"]
    endorser = Endorser(dn=_text(x509, "hv:dn", f"{where}.hv:endorser.hv:x509"),
                        ca=_text(x509, "hv:ca", f"{where}.hv:endorser.hv:x509"),
                        creator=_text(x509, "dc:creator", f"{where}.hv:endorser.hv:x509", False),
                        email=_text(x509, "hv:email", f"{where}.hv:endorser.hv:x509", False))
    raw_images = body.get("hv:images")
    if not isinstance(raw_images, list):
        raise ImageListError(f"{where}: hv:images missing or not a list")
    images: List[ImageEntry] = []
    invalid: List[InvalidEntry] = []
    seen: Dict[str, int] = {}
    for index, raw in enumerate(raw_images):
        try:
            entry = parse_image(raw, f"hv:images[{index}]")
        except ImageListError as exc:
            ident = raw.get("hv:image", {}).get("dc:identifier") if isinstance(raw, dict) and isinstance(
                raw.get("hv:image"), dict) else None
            problem = str(exc).split(": ", 1)[-1]
            invalid.append(InvalidEntry(index, ident if isinstance(ident, str) and ident else None, problem))
            continue
        if entry.identifier in seen:
            invalid.append(InvalidEntry(index, entry.identifier,
                                        f"dc:identifier repeats hv:images[{seen[entry.identifier]}]"))
            continue
        seen[entry.identifier] = index
        images.append(entry)
    expires = _time(body, "dc:date:expires", where, True)
    assert expires is not None
    return ImageList(
        identifier=_text(body, "dc:identifier", where), version=_text(body, "hv:version", where),
        created=_time(body, "dc:date:created", where, False), expires=expires, endorser=endorser,
        images=tuple(images), title=_text(body, "dc:title", where, False),
        description=_text(body, "dc:description", where, False), source=_text(body, "dc:source", where, False),
        uri=_text(body, "hv:uri", where, False), vo=_text(body, "ad:vo", where, False), invalid=tuple(invalid))


def version_key(version: str) -> Tuple[Tuple[int, Any], ...]:
    """Sort key comparing digit runs as numbers (``20150618211400``, ``1.10`` > ``1.9``)."""
    parts = re.findall(r"[0-9]+|[^0-9]+", version.strip())
    return tuple((0, int(p)) if p[0] in "0123456789" else (1, p) for p in parts)


def version_lower(candidate: str, accepted: str) -> bool:
    """True when ``candidate`` is an older ``hv:version`` than ``accepted``."""
    return version_key(candidate) < version_key(accepted)
