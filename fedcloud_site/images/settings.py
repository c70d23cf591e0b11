"""``images`` section: image-list subscriptions, cache, limits, formats and hooks.

Example::

    images:
      cache_dir: /var/cache/fedcloud-site/images
      capath: /etc/grid-security/certificates
      formats: [qcow2, raw]             # what the cloud accepts; others are converted with qemu-img
      grace_period: 1d                  # retired images stay deactivated this long before deletion
      subscriptions:
        - name: fedcloud.egi.eu
          url: https://vmcaster.appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list
          token_file: /etc/fedcloud-site/appdb-token
          endorser_dn: /DC=EU/DC=EGI/C=NL/O=Hosts/O=EGI.eu/CN=appdb.egi.eu
          ca_dn: /DC=ORG/DC=SEE-GRID/CN=SEE-GRID CA 2013
          vo: fedcloud.egi.eu           # images go to (and are shared with) this VO's projects
          filter: {os: [Ubuntu, CentOS]}
          policy: auto                  # or 'approve': wait for 'fedcloud-site images approve'
          datastore_id: 101             # OpenNebula: this VO's image datastore (default cloud.opennebula's)
          opennebula_template: true     # OpenNebula: a VM template beside each image (default: the section's)
      template: {memory: 2048, vcpus: 1, cpu: 0.5}   # what those templates hold when the list does not say
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from ..cloud.base import Capability
from ..schema import Duration, Secret
from ..settings import DaemonSettings

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

#: vmcatcher event types a hook can subscribe to
EVENT_TYPES = ("ProcessPrefix", "ProcessPostfix", "AvailablePrefix", "AvailablePostfix", "ExpirePrefix",
               "ExpirePostfix", "SubscriptionImageNew")
DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhd", "vhdx", "iso")


def parse_size(value: str) -> int:
    """Bytes from ``"123"``, ``"500M"``, ``"20G"``, ``"1TiB"`` (binary multiples)."""
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size such as 500M, 20G or 1T, got {value!r}")
    return int(float(match.group(1)) * _FACTORS[match.group(2).lower()])


@dataclass
class ImageFilter:
    """Which images of a list to take; empty lists mean "all". Matches are case-insensitive."""

    identifiers: List[str] = field(default_factory=list)  # dc:identifier values
    titles: List[str] = field(default_factory=list)  # regular expressions searched in dc:title
    os: List[str] = field(default_factory=list)  # sl:os / sl:osname values (e.g. Linux, Ubuntu)

    def validate(self) -> None:
        for pattern in self.titles:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"titles: bad regular expression {pattern!r}: {exc}") from exc


@dataclass
class Hook:
    """A command run (by ``/bin/sh -c``) on image events with vmcatcher's ``VMCATCHER_EVENT_*`` variables."""

    command: str
    events: List[str] = field(default_factory=list)  # empty: every event type
    timeout: Duration = Duration(10)

    def validate(self) -> None:
        unknown = [e for e in self.events if e not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"events: unknown event type(s) {unknown}; known: {', '.join(EVENT_TYPES)}")


#: template attributes the backend sets itself (not in ``template.attributes``/``vectors``)
_OWN_TEMPLATE_ATTRIBUTES = ("NAME", "CPU", "VCPU", "MEMORY", "DISK")
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass
class TemplateSettings:
    """The VM template made beside each registered image when ``opennebula_template`` is on.

    MEMORY and VCPU come from the list's ``hv:ram_minimum``/``hv:core_minimum`` when it gives them, else
    from here; CPU (the physical share) is ``cpu`` per VCPU; OS ARCH from ``sl:arch``; DISK the image.
    """

    memory: int = 1024  # MB
    vcpus: int = 1
    cpu: float = 1.0  # physical CPU share per VCPU
    context: bool = True  # CONTEXT = [NETWORK="YES", SSH_PUBLIC_KEY="$USER[SSH_PUBLIC_KEY]"] unless in vectors
    attributes: Dict[str, str] = field(default_factory=dict)  # extra single attributes, e.g. {HYPERVISOR: kvm}
    vectors: Dict[str, Dict[str, str]] = field(default_factory=dict)  # e.g. {NIC: {NETWORK: public}}

    def validate(self) -> None:
        if self.memory < 1 or self.vcpus < 1:
            raise ValueError("memory and vcpus: must be at least 1")
        if self.cpu <= 0:
            raise ValueError("cpu: must be positive")
        for key in ("attributes", "vectors"):
            for name in getattr(self, key):
                if not _ATTRIBUTE.match(name):
                    raise ValueError(f"{key}: {name!r} is not an attribute name (letters, digits, '_')")
                if name.upper() in _OWN_TEMPLATE_ATTRIBUTES:
                    raise ValueError(f"{key}: {name} is set from the image and its list entry")
                if key == "vectors" and any(not _ATTRIBUTE.match(k) for k in self.vectors[name]):
                    raise ValueError(f"vectors.{name}: sub-attribute names are letters, digits and '_'")

    def extra_attributes(self) -> Dict[str, Any]:
        """Attributes added to every template (single and vector), upper-cased."""
        extra: Dict[str, Any] = {k.upper(): v for k, v in self.attributes.items()}
        extra.update({k.upper(): {s.upper(): v for s, v in sub.items()} for k, sub in self.vectors.items()})
        if self.context and "CONTEXT" not in extra:
            extra["CONTEXT"] = {"NETWORK": "YES", "SSH_PUBLIC_KEY": "$USER[SSH_PUBLIC_KEY]"}
        return extra


@dataclass
class Subscription:
    """One image list: where it is, who must have signed it, and where its images go."""

    name: str
    endorser_dn: str  # signer certificate subject, slash form (/DC=.../CN=...)
    ca_dn: str  # signer certificate issuer, slash form
    url: str = ""  # https://, http:// or file:///absolute/path
    list_file: Optional[Path] = None  # instead of url: a local signed list (relative to the config file)
    enabled: bool = True  # disabled (or removed) subscriptions have their images retired
    token: Optional[Secret] = None  # AppDB access token (basic auth: token / x-oauth-basic); or token_file
    vo: Optional[str] = None  # a VO of the ``vos`` section: its projects receive the images
    project: Optional[str] = None  # a project id/name instead of (or in addition to) ``vo``
    identifier: Optional[str] = None  # expected dc:identifier of the list (pinned after the first good one)
    filter: ImageFilter = field(default_factory=ImageFilter)
    policy: Literal["auto", "approve"] = "auto"
    prefix: str = ""  # prepended to image names (after the section's prefix)
    sharing: Optional[Literal["private", "shared", "community", "public"]] = None  # default: shared if a VO
    datastore_id: Optional[int] = None  # OpenNebula image datastore (default: cloud.opennebula.datastore_id)
    opennebula_template: Optional[bool] = None  # a VM template beside each image (default: the section's)

    def validate(self) -> None:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$", self.name):
            raise ValueError(f"name: {self.name!r} must be letters, digits, '_', '.', '@' or '-'")
        if bool(self.url) == (self.list_file is not None):
            raise ValueError("url: give either url or list_file (a local signed list)")
        if self.url and not self.url.startswith(("https://", "http://", "file://")):
            raise ValueError(f"url: {self.url!r} must be an https://, http:// or file:// URL "
                             f"(for a local file relative to the configuration use list_file)")
        if self.datastore_id is not None and self.datastore_id < 0:
            raise ValueError(f"datastore_id: must be a datastore id (>= 0), got {self.datastore_id}")
        for key in ("endorser_dn", "ca_dn"):
            if not getattr(self, key).startswith("/"):
                raise ValueError(f"{key}: expected a slash-form DN such as /DC=org/DC=example/CN=name")

    @property
    def location(self) -> str:
        """Where the list is fetched from: ``url``, or ``list_file`` as a ``file://`` URL."""
        return self.url or (Path(os.path.abspath(self.list_file)).as_uri() if self.list_file is not None else "")


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(3600)
    cache_dir: Path = Path("/var/cache/fedcloud-site/images")
    capath: Path = Path("/etc/grid-security/certificates")
    ca_bundle: Optional[Path] = None  # extra CA file trusted for HTTPS (besides the system bundle and capath)
    allow_stale_crls: bool = False  # accept a CA whose CRL is past nextUpdate (fetch-crl not running)
    subscriptions: List[Subscription] = field(default_factory=list)
    prefix: str = ""  # prepended to every image name
    # limits
    max_list_size: str = "20M"
    list_timeout: Duration = Duration(60)
    http_timeout: Duration = Duration(60)  # connect / between-bytes timeout
    download_timeout: Duration = Duration(6 * 3600)  # whole download of one image
    max_image_size: str = "100G"
    max_parallel_downloads: int = 2
    cache_quota: str = "200G"
    min_free_space: str = "1G"  # keep this much free on the cache file system
    retry_after: Duration = Duration(900)  # failed images are retried after this long
    grace_period: Duration = Duration(86400)  # deprecated (deactivated) images are deleted after this long
    keep_cache: bool = True  # keep registered images' files (within the quota) for re-registration
    # formats
    formats: List[str] = field(default_factory=lambda: ["qcow2", "raw"])  # accepted by the cloud, preferred 1st
    convert: bool = True  # convert other formats (and OVA contents) with qemu-img
    qemu_img: str = "qemu-img"
    # events
    hooks: List[Hook] = field(default_factory=list)
    trigger_file: Optional[Path] = None  # touched when images change; default <state_dir>/images.changed
    # OpenNebula: VM templates beside the images
    opennebula_template: bool = False  # default of the subscriptions' opennebula_template
    template: TemplateSettings = field(default_factory=TemplateSettings)
    # take over the images these tools registered (same list entry, same bytes) instead of uploading them again
    # (written by `fedcloud-site migrate`; see fedcloud_site.images.adopt)
    adopt_images_from: List[Literal["atrope", "vmcatcher", "cloudkeeper"]] = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        for key in ("max_list_size", "max_image_size", "cache_quota", "min_free_space"):
            try:
                parse_size(getattr(self, key))
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from exc
        if self.max_parallel_downloads < 1:
            raise ValueError("max_parallel_downloads: must be at least 1")
        bad = [f for f in self.formats if f not in DISK_FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats: expected some of {', '.join(DISK_FORMATS)}, got {self.formats}")
        names = [s.name for s in self.subscriptions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"subscriptions: duplicate name(s) {duplicates}")

    def finish(self, config: Any) -> None:
        for index, sub in enumerate(self.subscriptions):
            if sub.vo is not None and sub.vo not in config.vos:
                known = ", ".join(sorted(config.vos)) or "none"
                raise ValueError(f"subscriptions[{index}].vo: VO {sub.vo!r} is not in the vos section "
                                 f"(known: {known})")

    def needed_capabilities(self) -> Dict[Capability, str]:
        """Image writing always; VM templates and datastores where a subscription asks for them."""
        needed = {Capability.IMAGE_WRITE: ""}
        if self.opennebula_template:
            needed[Capability.TEMPLATES] = "opennebula_template"
        for index, sub in enumerate(self.subscriptions):
            if sub.datastore_id is not None:
                needed.setdefault(Capability.DATASTORES, f"subscriptions[{index}].datastore_id")
            if sub.opennebula_template:
                needed.setdefault(Capability.TEMPLATES, f"subscriptions[{index}].opennebula_template")
        return needed

    def wants_template(self, sub: Subscription) -> bool:
        """Does ``sub`` want a VM template beside each of its images?"""
        return self.opennebula_template if sub.opennebula_template is None else sub.opennebula_template

    # parsed sizes
    @property
    def max_list_bytes(self) -> int:
        return parse_size(self.max_list_size)

    @property
    def max_image_bytes(self) -> int:
        return parse_size(self.max_image_size)

    @property
    def cache_quota_bytes(self) -> int:
        return parse_size(self.cache_quota)

    @property
    def min_free_bytes(self) -> int:
        return parse_size(self.min_free_space)

    def trigger_path(self) -> Path:
        return self.trigger_file or self.state_path("images") / "images.changed"
