"""Recognising images another subscriber registered, so that ``images.adopt_images_from`` takes them over.

A site switching from atrope, vmcatcher or cloudkeeper already has the current version of each listed
image in its cloud.  Uploading it again would duplicate every image (and change the image ids users
and the information system know).  An image is that version when the other tool's properties name
the same list entry and the same bytes:

* **atrope** (``atrope/dispatcher/glance.py``): ``appdb_id`` = the entry's ``dc:identifier``, its
  ``sha512`` (atrope 2.0) or ``image_hash`` = ``sha512:<hex>`` (EGI's fork) = ``sl:checksum:sha512``,
  and the ``image_list`` it was dispatched for;
* **vmcatcher** hooks (glancepush and the like) store the ``VMCATCHER_EVENT_*`` variables as lower-case
  properties: ``vmcatcher_event_dc_identifier`` and ``vmcatcher_event_sl_checksum_sha512``;
* **cloudkeeper-os** (``cloudkeeper_os/openstack/handler.py``): ``CLOUDKEEPER_mpuri`` = ``ad:mpuri`` and
  ``CLOUDKEEPER_version`` = ``hv:version`` (it keeps no checksum of the list); **cloudkeeper-one**:
  ``CLOUDKEEPER_APPLIANCE_ID`` = ``dc:identifier`` and ``CLOUDKEEPER_APPLIANCE_VERSION`` = ``hv:version``
  (also ``CLOUDKEEPER_APPLIANCE_MPURI`` when set).

Images already ours, or not usable (not active), are never taken.  Adopting rewrites the image's
properties to ours (:func:`fedcloud_site.images.register.image_properties`): from then on the other tool
no longer recognises it, and we manage it like an image we uploaded.
"""

from __future__ import annotations

from typing import Iterable, List, Literal, Optional, Tuple

from ..cloud.base import Image
from .imagelist import ImageEntry
from .register import is_ours, prop

Origin = Literal["atrope", "vmcatcher", "cloudkeeper"]
ORIGINS: Tuple[Origin, ...] = ("atrope", "vmcatcher", "cloudkeeper")


def origin_of(image: Image, entry: ImageEntry) -> Optional[Origin]:
    """Which tool registered ``image`` as the version ``entry`` of a list (None: not that version)."""
    if is_ours(image):
        return None
    identifier, sha512 = entry.identifier, entry.sha512.lower()
    if prop(image, "appdb_id") == identifier and prop(image, "image_list") is not None:
        hashes = {(prop(image, "sha512") or "").lower(), (prop(image, "image_hash") or "").lower()}
        if sha512 in hashes or f"sha512:{sha512}" in hashes:
            return "atrope"
    if (prop(image, "vmcatcher_event_dc_identifier") == identifier
            and (prop(image, "vmcatcher_event_sl_checksum_sha512") or "").lower() == sha512):
        return "vmcatcher"
    props = image.properties
    if entry.mpuri and props.get("CLOUDKEEPER_mpuri") == entry.mpuri \
            and props.get("CLOUDKEEPER_version", entry.version) == entry.version:
        return "cloudkeeper"
    if props.get("CLOUDKEEPER_APPLIANCE_ID") == identifier \
            and props.get("CLOUDKEEPER_APPLIANCE_VERSION") == entry.version \
            and props.get("CLOUDKEEPER_APPLIANCE_MPURI", entry.mpuri) == entry.mpuri:
        return "cloudkeeper"
    return None


def foreign_copies(images: Iterable[Image], entry: ImageEntry, origins: Iterable[str]) -> List[Tuple[Image, Origin]]:
    """Active images of ``origins`` holding the version ``entry``, oldest first (the one users know longest)."""
    wanted = set(origins)
    found = []
    for image in images:
        if image.status != "active":
            continue
        origin = origin_of(image, entry)
        if origin is not None and origin in wanted:
            found.append((image, origin))
    return sorted(found, key=lambda pair: (pair[0].created_at.isoformat() if pair[0].created_at else "", pair[0].id))
