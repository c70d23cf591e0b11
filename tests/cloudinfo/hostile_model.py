"""The test site's model with names, IDs and a VO an attacker (or a careless cloud admin) could choose."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from fedcloud_site.cloudinfo.model import SiteModel

#: names the cloud may hold: everything an LDIF reader, bdii-update or slapd could trip over
HOSTILE_NAMES = (
    "Ubuntu dn: 22.04", "\tleading tab", "trailing tab\t\x0b\x0c", "Biomédical ü ß 中文", "\xa0nbsp\u2003",
    "two\nlines\r\n", ":colon", "<less", "  spaces  ", "nul\x00byte", "dn:", "x" * 300 + " dn:", "emoji 🚀",
    "\ufeffbom", "sep\x1c\x1d\x1e\x1f", "\x85next line", "a  b", "lone \ud800 surrogate", "#hash", "",
)
#: IDs the cloud may hold (Glance, Nova and the static backend accept any string)
HOSTILE_IDS = (
    "img,+=;é", "iddn:x", "#lead", "a b", "ÆØÅ", "dn:", "\\back\"quote", "<>", " pad ", "Δ" * 40, "x/y:z@w",
    "plain-id", "tab\tid", "uuid-like-0001", "é", ";", "semi;colon", "x~y", "UPPER dn: lower", "-",
)
HOSTILE_FLAVOUR_IDS = ("m1+small", "é", "gpu=1,2", "dn:flavour", " ")
HOSTILE_VO = "vo.é+,=;dn:x"


def hostile_model(base: SiteModel, names: Sequence[str] = HOSTILE_NAMES, ids: Sequence[str] = HOSTILE_IDS,
                  flavour_ids: Sequence[str] = HOSTILE_FLAVOUR_IDS, vo: str = HOSTILE_VO) -> SiteModel:
    """``base`` with one share of VO ``vo``, images ``ids`` named ``names``, flavours ``flavour_ids``.

    Every other image is private to the hostile share (so its share foreign key is published).
    """
    svc = base.service.id
    template_share = base.shares[0]
    share_id = f"{base.endpoint.id}_share_{vo}_{template_share.project_id}"
    share = replace(template_share, id=share_id, vo=vo, name=f"{vo} share", description=f"Share for VO {vo}",
                    policy_id=f"{share_id}_Policy")
    shares = sorted([*base.shares, share], key=lambda s: s.id)
    images = [replace(base.images[0], id=image_id, ldif_id=f"{image_id}_{svc}", name=name, description=name,
                      version=name, os_name=name, public=index % 2 == 0,
                      share_ids=tuple(s.id for s in shares) if index % 2 == 0 else (share_id,))
              for index, (image_id, name) in enumerate(zip(ids, names))]
    types = [replace(base.instance_types[0], id=flavour_id, ldif_id=f"{flavour_id}_{svc}",
                     name=names[index % len(names)] if names else flavour_id, projects=None)
             for index, flavour_id in enumerate(flavour_ids)]
    policy = replace(base.access_policy, rules=tuple(sorted({s.rule for s in shares})))
    return replace(base, shares=shares, images=images, instance_types=types, access_policy=policy)
