"""The normalised membership model every input (pushed file, RPC pull) is turned into."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import FrozenSet, Optional, Tuple

from ..errors import FedcloudSiteError


class BadInput(FedcloudSiteError):
    """The membership input cannot be used; the message names the file and the line or record."""


class SourceUnavailable(FedcloudSiteError):
    """The membership source (Perun RPC) could not be reached or answered with a server error."""


class MemberStatus(str, enum.Enum):
    """Perun member states; only VALID members get an enabled account."""

    VALID = "VALID"
    INVALID = "INVALID"
    EXPIRED = "EXPIRED"
    SUSPENDED = "SUSPENDED"
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class Membership:
    """A user's membership of one VO (optionally through a Perun group)."""

    vo: str
    status: MemberStatus = MemberStatus.VALID
    group: Optional[str] = None
    roles: Tuple[str, ...] = ()


@dataclass(frozen=True)
class PerunUser:
    """One person as Perun describes them."""

    id: str  # login / unique person id (e.g. the EGI Check-in id) or legacy ``<vo>_<UID>``
    display_name: Optional[str] = None
    email: Optional[str] = None
    x509_dns: Tuple[str, ...] = ()
    ssh_keys: Tuple[str, ...] = ()
    memberships: Tuple[Membership, ...] = ()
    banned: bool = False

    def valid_in(self, vo: str) -> bool:
        """True when the user is a VALID member of ``vo`` and not banned."""
        if self.banned:
            return False
        return any(m.vo == vo and m.status is MemberStatus.VALID for m in self.memberships)


@dataclass(frozen=True)
class Snapshot:
    """The full membership state from one input (Perun always sends everything, never a delta)."""

    source: str  # file path or RPC URL, for logs and the audit trail
    format: str  # "json", "fedcloud_export" or "rpc"
    generated_at: Optional[datetime]  # when Perun produced it (ordering check)
    vos: FrozenSet[str]  # VOs the input covers: a VO listed here with no members really has none
    users: Tuple[PerunUser, ...]
    digest: str  # sha256 of the input, for the state and the audit trail
