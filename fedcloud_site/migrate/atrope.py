"""atrope's image list sources (``/etc/atrope/sources.yaml``, its ``hepix_sources``) -> ``images.subscriptions``.

Each entry ``<name>: {url, enabled, endorser: {dn, ca}, token, images: [ids], prefix, project}`` becomes a
subscription.  atrope registered each image in Glance tagged ``atrope`` with the properties ``appdb_id``
(the list entry's ``dc:identifier``), ``sha512``, ``image_list`` (the source name),
``vmcatcher_event_ad_mpuri``; the migration turns ``images.adopt_images_from: [atrope]`` on, so that the
images daemon takes those images over (see :mod:`fedcloud_site.images.adopt`) instead of uploading them
again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Set

from .errors import MigrationError
from .report import Report
from .result import ToolResult
from .yamlfile import read_yaml_mapping

TOOL = "atrope"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.@-]+")
_KNOWN = {"url", "enabled", "endorser", "token", "images", "prefix", "project"}


def subscription_name(name: str, taken: Set[str]) -> str:
    """A subscription name from an atrope source name (letters, digits, ``_ . @ -``), unique among ``taken``."""
    base = _NAME_CHARS.sub("-", name).strip("-._@") or "atrope"
    if not base[0].isalnum():
        base = f"s{base}"
    candidate, counter = base, 2
    while candidate in taken:
        candidate = f"{base}-{counter}"
        counter += 1
    return candidate


def migrate(path: Path, report: Report) -> ToolResult:
    """Read atrope's sources YAML into a :class:`ToolResult` (the ``images`` section)."""
    path = Path(path)
    data = read_yaml_mapping(path)
    subscriptions: List[Dict[str, Any]] = []
    taken: Set[str] = set()
    for raw_name, meta in data.items():
        name = str(raw_name)
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise MigrationError(path, f"expected a mapping (url, endorser, ...), got {type(meta).__name__}", name)
        enabled = meta.get("enabled", True)
        if not isinstance(enabled, bool):
            raise MigrationError(path, f"expected true or false, got {enabled!r}", name, "enabled")
        url = meta.get("url", "")
        endorser = meta.get("endorser")
        if not url and not enabled:
            report.skip(path, name, "disabled and without url: nothing to subscribe to (atrope ignored it too)")
            continue
        if not isinstance(url, str) or not url.startswith(("https://", "http://", "file://")):
            raise MigrationError(path, f"expected an https:// (or http://, file://) URL, got {url!r}", name, "url")
        if not isinstance(endorser, dict):
            raise MigrationError(path, "expected a mapping with dn and ca (the list's signer)", name, "endorser")
        dns = {}
        for key in ("dn", "ca"):
            value = endorser.get(key)
            if not isinstance(value, str) or not value.startswith("/"):
                raise MigrationError(path, f"expected a slash-form DN (/DC=.../CN=...), got {value!r}", name,
                                     f"endorser.{key}")
            dns[key] = value
        ours = subscription_name(name, taken)
        taken.add(ours)
        sub: Dict[str, Any] = {"name": ours, "url": url, "endorser_dn": dns["dn"], "ca_dn": dns["ca"]}
        report.map(path, name, f"images.subscriptions[{len(subscriptions)}].name", ours,
                   "renamed: subscription names are letters, digits, _ . @ -" if ours != name else "")
        report.map(path, f"{name}.url", f"images.subscriptions[{len(subscriptions)}].url", url)
        report.map(path, f"{name}.endorser", f"images.subscriptions[{len(subscriptions)}].endorser_dn/ca_dn",
                   f"{dns['dn']} / {dns['ca']}")
        if not enabled:
            sub["enabled"] = False
            report.map(path, f"{name}.enabled", f"images.subscriptions[{len(subscriptions)}].enabled", False,
                       "disabled: its images are retired (atrope left them in place)")
        token = meta.get("token")
        if token:
            if not isinstance(token, str):
                raise MigrationError(path, "expected a string", name, "token")
            sub["token"] = token
            report.map(path, f"{name}.token", f"images.subscriptions[{len(subscriptions)}].token", token, secret=True)
        else:
            sub["sharing"] = "public"
            report.default(TOOL, f"{name}: visibility of the images of a list without token", "public",
                           "shared with the subscription's VO/project", kept=True)
        wanted = meta.get("images")
        if wanted:
            if not isinstance(wanted, list) or not all(isinstance(i, str) for i in wanted):
                raise MigrationError(path, "expected a list of image identifiers", name, "images")
            sub["filter"] = {"identifiers": list(wanted)}
            report.map(path, f"{name}.images", f"images.subscriptions[{len(subscriptions)}].filter.identifiers",
                       list(wanted))
        for key, what in (("prefix", "a string"), ("project", "a project id")):
            value = meta.get(key)
            if not value:
                continue
            if not isinstance(value, str):
                raise MigrationError(path, f"expected {what}", name, key)
            sub[key] = value
            report.map(path, f"{name}.{key}", f"images.subscriptions[{len(subscriptions)}].{key}", value)
        for key in meta:
            if key not in _KNOWN:
                report.skip(path, f"{name}.{key}", "not used by atrope's sources")
        subscriptions.append(sub)
    images: Dict[str, Any] = {"subscriptions": subscriptions, "adopt_images_from": ["atrope"]}
    report.map(path, "(the images atrope registered)", "images.adopt_images_from", ["atrope"],
               "taken over (same list entry and sha512), not uploaded again")
    return ToolResult(TOOL, str(path), sections={"images": images})
