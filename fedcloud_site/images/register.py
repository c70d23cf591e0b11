"""Registering, updating and retiring subscribed images through the cloud backend plugin layer.

Every image we create carries origin properties (the same names atrope and vmcatcher used, so the
accounting extractor and the information provider find them): ``vmcatcher_event_ad_mpuri`` (marketplace
URI), ``appdb_id`` (``dc:identifier``), ``image_list`` (subscription), ``vmcatcher_event_il_dc_identifier``
(list identifier), ``vmcatcher_event_hv_version``, ``image_hash`` (``sha512:<hex>``), ``os_distro``,
``os_version``, ``architecture``, and the managed-by tag ``fedcloud_site_managed_by: images``. Only images
with that tag *and* our subscription name are ever deactivated, changed or deleted.

Where the cloud has VM templates (OpenNebula) and the subscription asks for them, each registered image gets
one template booting it, with the same origin properties plus ``fedcloud_site_template`` (a fingerprint of
what the template holds: a template whose fingerprint differs is replaced). Templates go when their image is
deprecated or deleted.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import BinaryIO, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..cloud.base import CloudBackend, Image, ImageSpec, NotFound, NotSupported, TemplateSpec, VMTemplate
from .imagelist import ImageEntry, ImageList

MANAGED_BY_KEY = "fedcloud_site_managed_by"
MANAGED_BY_VALUE = "images"
DEPRECATED_KEY = "fedcloud_site_deprecated_at"
TEMPLATE_KEY = "fedcloud_site_template"  # fingerprint of a template's content
_MAX_VALUE = 255  # Glance property value limit

_OS_DISTRO = {"centos": "centos", "centos stream": "centos", "ubuntu": "ubuntu", "debian": "debian",
              "fedora": "fedora", "almalinux": "almalinux", "alma linux": "almalinux", "rocky": "rocky",
              "rocky linux": "rocky", "scientific linux": "scientific", "sl": "scientific", "opensuse": "opensuse",
              "suse": "sles", "sles": "sles", "red hat": "rhel", "rhel": "rhel", "windows": "windows",
              "freebsd": "freebsd", "cirros": "cirros", "arch": "arch", "gentoo": "gentoo"}
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64", "i386": "i686", "i686": "i686",
         "aarch64": "aarch64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x"}


def _clip(value: str) -> str:
    return value if len(value) <= _MAX_VALUE else value[: _MAX_VALUE - 3] + "..."


def architecture(entry: ImageEntry) -> str:
    """``sl:arch`` in the usual vocabulary (x86_64, aarch64, ...), lower case."""
    return _ARCH.get(entry.arch.lower(), entry.arch.lower())


def os_distro(entry: ImageEntry) -> str:
    """Glance's ``os_distro`` vocabulary from ``sl:osname`` (or ``sl:os``), lower case."""
    name = (entry.osname or entry.os).strip().lower()
    return _OS_DISTRO.get(name, name.replace(" ", "-"))


def image_properties(subscription: str, image_list: ImageList, entry: ImageEntry,
                     vo: Optional[str]) -> Dict[str, str]:
    """The origin properties of an image version (values clipped to 255 characters)."""
    props = {
        MANAGED_BY_KEY: MANAGED_BY_VALUE,
        "image_list": subscription,
        "appdb_id": entry.identifier,
        "image_hash": f"sha512:{entry.sha512}",
        "vmcatcher_event_dc_identifier": entry.identifier,
        "vmcatcher_event_il_dc_identifier": image_list.identifier,
        "vmcatcher_event_hv_version": entry.version,
        "vmcatcher_event_dc_title": entry.title,
        "vmcatcher_event_dc_description": entry.description,
        "vmcatcher_event_ad_mpuri": entry.mpuri,
        "vmcatcher_event_hv_uri": entry.uri,
        "vmcatcher_event_sl_arch": entry.arch,
        "vmcatcher_event_sl_os": entry.os,
        "vmcatcher_event_sl_osname": entry.osname,
        "vmcatcher_event_sl_osversion": entry.osversion,
        "vmcatcher_event_vo": vo or image_list.vo,
        "os_distro": os_distro(entry),
        "os_version": entry.osversion,
        "architecture": architecture(entry),
    }
    if entry.core_minimum:
        props["hw_cpu_minimum"] = str(entry.core_minimum)  # informational; no Glance meaning
    return {key: _clip(value) for key, value in props.items() if value}


def prop(image: Union[Image, VMTemplate], key: str) -> Optional[str]:
    """An image (or template) property, also when the backend upper-cases names (OpenNebula attributes)."""
    value = image.properties.get(key)
    return value if value is not None else image.properties.get(key.upper())


def is_ours(image: Union[Image, VMTemplate], subscription: Optional[str] = None) -> bool:
    """Created by this subscriber (and, if given, for this subscription)."""
    if prop(image, MANAGED_BY_KEY) != MANAGED_BY_VALUE:
        return False
    return subscription is None or prop(image, "image_list") == subscription


def copies_of_version(images: Iterable[Image], subscription: str, identifier: str, sha512: str) -> List[Image]:
    """Our images of one version of a subscription's image, the one to keep first (active, newest); more than
    one means duplicates to clean up."""
    found = [i for i in images if is_ours(i, subscription)
             and prop(i, "appdb_id") == identifier and prop(i, "image_hash") == f"sha512:{sha512}"]
    return sorted(found, key=lambda i: (i.status == "active", i.created_at.isoformat() if i.created_at else ""),
                  reverse=True)


def metadata_changes(image: Image, name: str, properties: Mapping[str, str],
                     keep_deprecation: bool = False) -> Tuple[Dict[str, Optional[str]], Optional[str]]:
    """What to change on ``image`` so that it has ``name`` and ``properties``: (property changes, None meaning
    remove; the new name or None). A deprecation mark is removed unless ``keep_deprecation``."""
    changes: Dict[str, Optional[str]] = {k: v for k, v in properties.items() if prop(image, k) != v}
    if not keep_deprecation and prop(image, DEPRECATED_KEY) is not None:
        changes[DEPRECATED_KEY] = None
    return changes, (name if image.name != name else None)


@dataclass
class Target:
    """Where a subscription's images go."""

    owner: Optional[str]
    share_with: Sequence[str]
    visibility: str
    datastore: Optional[str] = None  # backend storage location (OpenNebula datastore id)


def template_fingerprint(spec: TemplateSpec) -> str:
    """A short digest of everything a template holds, to notice when it must be replaced."""
    data = asdict(replace(spec, properties={k: v for k, v in spec.properties.items() if k != TEMPLATE_KEY}))
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Registrar:
    """Cloud operations for the subscriber, with an in-run snapshot of our images."""

    def __init__(self, cloud: CloudBackend, log: object, activation_timeout: float = 600) -> None:
        self.cloud = cloud
        self.log = log
        self.activation_timeout = activation_timeout
        self._ours: Optional[Dict[str, Image]] = None
        self._templates: Optional[Dict[str, VMTemplate]] = None
        self.templates_created = 0
        self.templates_deleted = 0

    def ours(self, refresh: bool = False) -> Dict[str, Image]:
        """Our images in the cloud by id (listed once per run unless ``refresh``)."""
        if self._ours is None or refresh:
            self._ours = {image.id: image for image in self.cloud.list_images() if is_ours(image)}
        return self._ours

    def snapshot(self) -> List[Image]:
        """Every image of the cloud, listed once; ours among them become the run's view of :meth:`ours`."""
        images = list(self.cloud.list_images())
        self._ours = {image.id: image for image in images if is_ours(image)}
        return images

    def resolve_projects(self, names_or_ids: Sequence[str]) -> List[str]:
        """Project ids for configured project names or ids (unknown ones are kept as given)."""
        if not names_or_ids:
            return []
        try:
            projects = list(self.cloud.list_projects())
        except NotSupported:
            return list(names_or_ids)
        by_name = {p.name: p.id for p in projects}
        ids = {p.id for p in projects}
        return [value if value in ids else by_name.get(value, value) for value in names_or_ids]

    def register(self, name: str, disk_format: str, container_format: str, properties: Mapping[str, str],
                 target: Target, data: BinaryIO, min_ram_mb: int = 0) -> Image:
        """Create and upload an image, then wait until the cloud says it is active."""
        spec = ImageSpec(name=name, disk_format=disk_format, container_format=container_format, owner=target.owner,
                         visibility=target.visibility, min_ram_mb=min_ram_mb, properties=dict(properties),
                         share_with=tuple(target.share_with), datastore=target.datastore)
        image = self.cloud.create_image(spec, data)
        image = self.wait_active(image)
        if self._ours is not None:
            self._ours[image.id] = image
        return image

    def wait_active(self, image: Image) -> Image:
        deadline = time.monotonic() + self.activation_timeout
        delay = 0.5
        while image.status != "active":
            if image.status in ("killed", "deleted", "error") or time.monotonic() > deadline:
                raise RuntimeError(f"image {image.id} did not become active (status {image.status})")
            time.sleep(delay)
            delay = min(delay * 2, 10)
            image = self.cloud.get_image(image.id)
        return image

    def apply_metadata(self, image_id: str, changes: Mapping[str, Optional[str]], new_name: Optional[str]) -> Image:
        """Set (or, for None, remove) properties and rename; the updated image."""
        updated = self.cloud.update_image(image_id, dict(changes), name=new_name)
        if self._ours is not None:
            self._ours[image_id] = updated
        return updated

    def deprecate(self, image_id: str, when: str) -> None:
        """Hide a retired image from new VMs (deactivate) and mark it; NotFound if it is gone."""
        image = self._own(image_id)
        self.cloud.update_image(image.id, {DEPRECATED_KEY: when})
        try:
            self.cloud.set_image_active(image.id, False)
        except NotSupported:
            self.log.info("backend cannot deactivate images; only marked deprecated",  # type: ignore[attr-defined]
                          image_id=image_id)
        self.drop_templates(image.id)

    def reactivate(self, image_id: str) -> None:
        image = self._own(image_id)
        self.cloud.update_image(image.id, {DEPRECATED_KEY: None})
        try:
            self.cloud.set_image_active(image.id, True)
        except NotSupported:
            pass

    def delete(self, image_id: str) -> Optional[str]:
        """Delete one of our images; returns why not (in use) or None when deleted or already gone."""
        try:
            image = self._own(image_id)
        except NotFound:
            return None
        if self.cloud.image_in_use(image.id):
            return "in use by VMs; deleted once unused"
        self.drop_templates(image.id)
        try:
            self.cloud.delete_image(image.id)
        except NotFound:
            pass
        if self._ours is not None:
            self._ours.pop(image.id, None)
        return None

    def _own(self, image_id: str) -> Image:
        image = self.cloud.get_image(image_id)
        if not is_ours(image):
            raise PermissionError(f"image {image_id} was not created by fedcloud-site images "
                                  f"(no {MANAGED_BY_KEY} property); left alone")
        return image

    # -- VM templates ---------------------------------------------------------------------------------
    def templates(self) -> Dict[str, VMTemplate]:
        """Our VM templates by id (listed once per run); NotSupported where the cloud has none."""
        if self._templates is None:
            self._templates = {t.id: t for t in self.cloud.list_templates() if is_ours(t)}
        return self._templates

    def ensure_template(self, spec: TemplateSpec) -> Optional[VMTemplate]:
        """Make sure one template of ours matching ``spec`` boots ``spec.image_id``: returns the template
        created, or None when it was already there. Outdated or duplicate templates of the image go."""
        fingerprint = template_fingerprint(spec)
        mine = [t for t in self.templates().values() if spec.image_id in t.image_ids]
        current = [t for t in mine if prop(t, TEMPLATE_KEY) == fingerprint]
        for stale in mine if not current else [t for t in mine if t.id != current[0].id]:
            self.delete_template(stale)  # first: the replacement may take the same name
        if current:
            return None
        template = self.cloud.create_template(replace(spec, properties={**spec.properties, TEMPLATE_KEY: fingerprint}))
        self.templates()[template.id] = template
        self.templates_created += 1
        return template

    def drop_templates(self, image_id: str) -> None:
        """Delete our templates booting ``image_id`` (nothing where the cloud has no templates)."""
        try:
            mine = [t for t in self.templates().values() if image_id in t.image_ids]
        except NotSupported:
            return
        for template in mine:
            self.delete_template(template)

    def delete_template(self, template: VMTemplate) -> None:
        """Delete one of our templates (gone already: fine)."""
        try:
            self.cloud.delete_template(template.id)
        except NotFound:
            pass
        self.templates().pop(template.id, None)
        self.templates_deleted += 1
        self.log.info("VM template deleted", template_id=template.id, name=template.name,  # type: ignore[attr-defined]
                      image_ids=list(template.image_ids))
