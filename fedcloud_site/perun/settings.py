"""``perun`` section: where membership comes from and how it is mirrored into the cloud.

Example::

    perun:
      source: file                      # or rpc
      file: /var/spool/perun/fedcloud-users.json
      drop_dir: /var/spool/perun/incoming   # Perun's push lands here; each new file is processed
      grace_period: 30d                 # disabled users are deleted after this long ...
      delete_policy: no_vms             # ... if they own no VMs (or never / always)
      max_change_fraction: 0.1          # refuse to change more than 10% of managed users (--force)
      user_name: "{id}"                 # "{vo}_{id}" gives one account per VO membership
      vos:                              # VOs to mirror (default: every VO of the top-level ``vos``)
        fedcloud.egi.eu:
          vo_id: 42                     # Perun VO id (rpc source)
          group_ids: [1234]             # only members of these Perun groups (rpc source)
          quota: {instances: 10, cores: 40, ram_mb: 81920}
      rpc:
        url: https://perun.example.org
        cert_file: /etc/grid-security/hostcert.pem
        key_file: /etc/grid-security/hostkey.pem
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional

from ..cloud.base import Capability
from ..schema import Duration, Secret
from ..settings import DaemonSettings

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config

#: placeholders of ``user_name``
NAME_FIELDS = ("id", "vo")

#: Perun attribute holding the EGI Check-in identifier (``…@egi.eu``)
EGI_LOGIN_ATTRIBUTE = "urn:perun:user:attribute-def:virt:optional-login-namespace:egi"


@dataclass
class QuotaSettings:
    """Per-user limits given to the users of a VO (None: the backend's default)."""

    instances: Optional[int] = None
    cores: Optional[int] = None
    ram_mb: Optional[int] = None


@dataclass
class PerunVOSettings:
    """``perun.vos.<vo>``: one VO mirrored into local users."""

    vo_id: Optional[int] = None  # Perun VO id (rpc source)
    group_ids: List[int] = field(default_factory=list)  # Perun groups whose members get accounts (rpc source)
    quota: Optional[QuotaSettings] = None


@dataclass
class RPCSettings:
    """``perun.rpc``: the Perun RPC API (JSON over HTTPS), certificate or password login."""

    url: Optional[str] = None  # base URL, e.g. https://perun.example.org (``/<auth>/rpc/json/...`` is added)
    # URL prefix: certificate or HTTP basic login (Perun's krb/oauth logins need credentials we do not
    # handle, so they are refused here rather than failing at run time); default from the keys given
    auth: Optional[Literal["cert", "ba"]] = None
    cert_file: Optional[Path] = None  # client certificate (PEM) for ``cert`` login
    key_file: Optional[Path] = None
    ca_file: Optional[Path] = None  # CA bundle or directory to verify Perun; default: system trust
    username: Optional[str] = None  # for ``ba`` (HTTP basic) login
    password: Optional[Secret] = None
    timeout: Duration = Duration(60)
    retries: int = 2  # extra attempts after a connection error, timeout or 5xx
    login_attribute: str = EGI_LOGIN_ATTRIBUTE  # user attribute giving the user's id
    statuses: List[str] = field(default_factory=lambda: ["VALID", "INVALID", "EXPIRED", "SUSPENDED", "DISABLED"])

    @property
    def auth_path(self) -> str:
        if self.auth:
            return self.auth
        return "cert" if self.cert_file is not None else "ba"


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(900)  # full sync (drift repair) every this long
    source: Literal["file", "rpc"] = "file"
    file: Optional[Path] = None  # the pushed propagation file (JSON or legacy fedcloud_export)
    drop_dir: Optional[Path] = None  # directory Perun's push drops new files into
    watch_interval: Duration = Duration(30)  # how often the drop directory is looked at
    rpc: RPCSettings = field(default_factory=RPCSettings)
    vos: Dict[str, PerunVOSettings] = field(default_factory=dict)  # default: every VO of ``vos``
    max_change_fraction: float = 0.1  # refuse plans changing more managed users than this (--force)
    change_allowance: int = 5  # this many changes are always allowed, whatever the fraction
    grace_period: Duration = Duration(30 * 86400)  # disabled -> deleted after this long
    delete_policy: Literal["never", "no_vms", "always"] = "no_vms"
    user_name: str = "{id}"  # local user name; placeholders {id} (Perun user id) and {vo}
    managed_property: str = "FEDCLOUD_SITE_MANAGED"  # marker: users with value "yes" are ours
    protected_users: List[str] = field(default_factory=list)  # besides the backend's own (oneadmin, admin...)
    audit_log: Optional[Path] = None  # default <state_dir>/audit.jsonl
    keep_inputs: int = 10  # accepted/superseded drop-dir files kept in <state_dir>/inputs

    def validate(self) -> None:
        super().validate()
        if not 0 < self.max_change_fraction <= 1:
            raise ValueError("max_change_fraction: must be more than 0 and at most 1")
        if self.change_allowance < 0:
            raise ValueError("change_allowance: cannot be negative")
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.user_name) if name is not None}
        except ValueError as exc:
            raise ValueError(f"user_name: {exc}") from exc
        unknown = fields - set(NAME_FIELDS)
        if unknown or "id" not in fields:
            raise ValueError(f"user_name: {self.user_name!r} must use {{id}} and may use {{vo}} "
                             f"(unknown: {', '.join(sorted(unknown)) or 'none'})")
        if self.source == "rpc":
            if not self.rpc.url:
                raise ValueError("rpc.url: required when source is rpc")
            if not self.rpc.url.startswith("https://"):
                raise ValueError("rpc.url: must be an https:// URL")
            if self.rpc.auth_path == "cert" and (self.rpc.cert_file is None or self.rpc.key_file is None):
                raise ValueError("rpc.cert_file and rpc.key_file: required for certificate login")
            if self.rpc.auth_path == "ba" and (not self.rpc.username or self.rpc.password is None):
                raise ValueError("rpc.username and rpc.password: required for password (ba) login")
        known = ("VALID", "INVALID", "EXPIRED", "SUSPENDED", "DISABLED")
        for status in self.rpc.statuses:
            if status not in known:
                raise ValueError(f"rpc.statuses: {status!r} is not one of {', '.join(known)}")
        if self.keep_inputs < 0:
            raise ValueError("keep_inputs: cannot be negative")

    def needed_capabilities(self) -> Dict[Capability, str]:
        return {Capability.USERS: ""}

    def finish(self, config: Config) -> None:
        """Default the mirrored VOs to the top-level ``vos``; check the rpc source has Perun ids."""
        for vo in self.vos:
            if vo not in config.vos:
                raise ValueError(f"vos.{vo}: not a VO of the top-level vos section "
                                 f"(known: {', '.join(sorted(config.vos)) or 'none'})")
        if not self.vos:
            self.vos = {vo: PerunVOSettings() for vo in config.vos}
        if self.source == "rpc":
            missing = [vo for vo, settings in self.vos.items() if settings.vo_id is None]
            if missing:
                raise ValueError(f"vos.{missing[0]}.vo_id: required when source is rpc")

    def group_of(self, config: Config, vo: str) -> str:
        """The local group of a VO's users (``vos.<vo>.group``, default the VO name)."""
        settings: Any = config.vos.get(vo)
        return (settings.group if settings is not None and settings.group else vo)
