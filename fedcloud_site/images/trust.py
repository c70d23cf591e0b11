"""Is a downloaded list authentic and current? Signature, signer chain (CRLs), endorser DNs, expiry, identity.

Every rejection is a :class:`ListRejected` whose ``stage`` says which check failed (``signature``,
``certificate``, ``endorser``, ``content``, ``expired``, ``identifier``, ``version``) and whose message says
exactly why, for the log and ``images status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

from .. import smime
from ..errors import FedcloudSiteError
from ..x509 import X509Error, dn_matches, issuer_dn, subject_dn, verify_chain
from .imagelist import ImageList, ImageListError, parse_image_list, version_lower
from .settings import Subscription


class ListRejected(FedcloudSiteError):
    """The list was not accepted; nothing of the subscription is changed."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.message = message


@dataclass(frozen=True)
class VerifiedList:
    image_list: ImageList
    signer_dn: str
    issuer_dn: str
    content: bytes  # the signed JSON


def verify_list(signed: bytes, subscription: Subscription, capath: Path, now: datetime,
                allow_stale_crls: bool = False, accepted_identifier: Optional[str] = None,
                accepted_version: Optional[str] = None) -> VerifiedList:
    """Check everything about a signed list, or raise :class:`ListRejected`.

    ``accepted_identifier``/``accepted_version``: of the last list accepted for this subscription; a
    different identifier or a lower ``hv:version`` is refused (a replayed or substituted list).
    """
    try:
        message = smime.verify(signed)
    except smime.SmimeError as exc:
        raise ListRejected("signature", str(exc)) from exc
    signer = message.signer
    try:
        verify_chain(signer, capath, untrusted=[c for c in message.certificates if c != signer], now=now,
                     allow_stale_crls=allow_stale_crls)
    except X509Error as exc:
        raise ListRejected("certificate", str(exc)) from exc
    signer_subject, signer_issuer = subject_dn(signer), issuer_dn(signer)
    if not dn_matches(signer.subject, subscription.endorser_dn):
        raise ListRejected("endorser", f"signed by {signer_subject}, but the subscription trusts only "
                                       f"endorser_dn {subscription.endorser_dn}")
    if not dn_matches(signer.issuer, subscription.ca_dn):
        raise ListRejected("endorser", f"signer certificate issued by {signer_issuer}, but the subscription "
                                       f"expects ca_dn {subscription.ca_dn}")
    try:
        image_list = parse_image_list(message.content)
    except ImageListError as exc:
        raise ListRejected("content", str(exc)) from exc
    if not dn_matches(signer.subject, image_list.endorser.dn):
        raise ListRejected("endorser", f"list names endorser hv:dn {image_list.endorser.dn} but was signed by "
                                       f"{signer_subject}")
    if not dn_matches(signer.issuer, image_list.endorser.ca):
        raise ListRejected("endorser", f"list names hv:ca {image_list.endorser.ca} but the signer certificate "
                                       f"was issued by {signer_issuer}")
    if image_list.expired(now):
        raise ListRejected("expired", f"list {image_list.identifier} expired at "
                                      f"{image_list.expires.isoformat()} (dc:date:expires)")
    expected = subscription.identifier or accepted_identifier
    if expected and image_list.identifier != expected:
        raise ListRejected("identifier", f"list dc:identifier is {image_list.identifier}, expected {expected}")
    if accepted_version and version_lower(image_list.version, accepted_version):
        raise ListRejected("version", f"hv:version {image_list.version} is lower than the last accepted "
                                      f"{accepted_version} (replayed or rolled-back list)")
    return VerifiedList(image_list, signer_subject, signer_issuer, message.content)
