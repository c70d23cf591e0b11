"""Pulling VO membership from the Perun RPC API (JSON over HTTPS).

Calls are ``POST <url>/<auth>/rpc/json/<manager>/<method>`` with the parameters as a JSON object;
``<auth>`` is ``cert`` (client certificate) or ``ba`` (HTTP basic); Perun's ``krb`` and ``oauth`` are
not supported.  Perun answers
errors with HTTP 400 and ``{"errorId": ..., "name": "<Exception>", "message": ...}``.

Per configured VO: ``vosManager/getVoById`` (its short name must be the VO's local name), then
``membersManager/getCompleteRichMembers`` for the VO, or for each configured group
(``groupsManager/getGroupById`` checks the group belongs to the VO), with the user attributes
below.  Members of every status are asked for, so that suspended or expired members are disabled
rather than forgotten.  Connection errors, timeouts and 5xx answers are retried (urllib3 ``Retry``)
and then reported as :class:`SourceUnavailable`: nothing is changed on an incomplete pull.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .. import __version__
from ..errors import FedcloudSiteError
from ..timeutil import utcnow
from ..x509 import X509Error, normalize_dn
from .model import BadInput, Membership, MemberStatus, PerunUser, Snapshot, SourceUnavailable
from .settings import PerunVOSettings, RPCSettings

MAIL_ATTRIBUTE = "urn:perun:user:attribute-def:def:preferredMail"
DNS_ATTRIBUTE = "urn:perun:user:attribute-def:virt:userCertDNs"
SSH_ATTRIBUTE = "urn:perun:user:attribute-def:def:sshPublicKey"

#: worst first: the effective status of a member in a group is the worse of VO and group status
_STATUS_RANK = {MemberStatus.DISABLED: 0, MemberStatus.INVALID: 1, MemberStatus.SUSPENDED: 2,
                MemberStatus.EXPIRED: 3, MemberStatus.VALID: 4}


class PerunRPCError(FedcloudSiteError):
    """Perun refused a call (bad id, no privilege, bad credentials): retrying will not help."""


class PerunRPC:
    """A small client of the Perun RPC API over a ``requests`` session."""

    def __init__(self, settings: RPCSettings) -> None:
        if not settings.url:
            raise PerunRPCError("perun.rpc.url is not set")
        self.settings = settings
        self.base = f"{settings.url.rstrip('/')}/{settings.auth_path}/rpc/json"
        session = requests.Session()
        retry = Retry(total=settings.retries, connect=settings.retries, read=settings.retries,
                      status=settings.retries, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        session.mount("https://", HTTPAdapter(max_retries=retry))
        # given with every request: a session-level verify loses to REQUESTS_CA_BUNDLE in the environment
        self.verify: Any = str(settings.ca_file) if settings.ca_file is not None else True
        if settings.auth_path == "cert" and settings.cert_file is not None:
            session.cert = (str(settings.cert_file), str(settings.key_file or settings.cert_file))
        if settings.username and settings.password is not None:
            session.auth = (settings.username, str(settings.password))
        session.headers["User-Agent"] = f"fedcloud-site-perun/{__version__}"
        self.session = session
        self.calls = 0

    def close(self) -> None:
        self.session.close()

    def call(self, manager: str, method: str, **params: Any) -> Any:
        """One RPC call; :class:`SourceUnavailable` or :class:`PerunRPCError` on failure."""
        url = f"{self.base}/{manager}/{method}"
        timeout = float(self.settings.timeout)
        self.calls += 1
        try:
            response = self.session.post(url, json=params, timeout=(min(timeout, 15.0), timeout), verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise SourceUnavailable(f"Perun RPC {url}: TLS failure: {_short(exc)}") from exc
        except requests.RequestException as exc:
            raise SourceUnavailable(f"Perun RPC {url}: unreachable: {_short(exc)}") from exc
        if response.status_code in (401, 403):
            raise PerunRPCError(f"Perun RPC {url}: HTTP {response.status_code}: credentials rejected "
                                f"(perun.rpc auth {self.settings.auth_path})")
        error = _perun_error(response)
        if response.status_code >= 500:
            raise SourceUnavailable(f"Perun RPC {url}: HTTP {response.status_code}{error or ''}")
        if response.status_code >= 400:
            raise PerunRPCError(f"Perun RPC {manager}/{method}{_params(params)}: HTTP {response.status_code}"
                                f"{error or ''}")
        try:
            return response.json()
        except ValueError as cause:
            raise SourceUnavailable(f"Perun RPC {url}: answer is not JSON (truncated?)") from cause

    # -- membership --------------------------------------------------------------------------------------
    def attribute_names(self) -> List[str]:
        return [self.settings.login_attribute, MAIL_ATTRIBUTE, DNS_ATTRIBUTE, SSH_ATTRIBUTE]

    def fetch(self, vos: Mapping[str, PerunVOSettings]) -> Snapshot:
        """The membership of the configured VOs (and groups) as one snapshot."""
        people: Dict[str, _Person] = {}
        for vo_name, vo_settings in vos.items():
            if vo_settings.vo_id is None:
                raise PerunRPCError(f"perun.vos.{vo_name}.vo_id is not set")
            vo = self.call("vosManager", "getVoById", id=vo_settings.vo_id)
            short = vo.get("shortName") if isinstance(vo, dict) else None
            if short != vo_name:
                raise PerunRPCError(f"perun.vos.{vo_name}.vo_id {vo_settings.vo_id} is Perun VO {short!r}, "
                                    f"not {vo_name!r}")
            if vo_settings.group_ids:
                for group_id in vo_settings.group_ids:
                    group = self.call("groupsManager", "getGroupById", id=group_id)
                    if not isinstance(group, dict) or group.get("voId") != vo_settings.vo_id:
                        raise PerunRPCError(f"perun.vos.{vo_name}.group_ids: Perun group {group_id} is not a "
                                            f"group of VO {vo_settings.vo_id}")
                    members = self.call("membersManager", "getCompleteRichMembers", group=group_id,
                                        attrsNames=self.attribute_names(),
                                        allowedStatuses=list(self.settings.statuses), lookingInParentGroup=False)
                    self._add_members(people, vo_name, members, f"group {group_id} ({group.get('name')})",
                                      group=str(group.get("name") or group_id))
            else:
                members = self.call("membersManager", "getCompleteRichMembers", vo=vo_settings.vo_id,
                                    attrsNames=self.attribute_names(), allowedStatuses=list(self.settings.statuses))
                self._add_members(people, vo_name, members, f"VO {vo_settings.vo_id}", group=None)
        users = tuple(p.user() for _, p in sorted(people.items()))
        canonical = json.dumps([_user_json(u) for u in users], sort_keys=True).encode("utf-8")
        return Snapshot(source=self.settings.url or "", format="rpc", generated_at=utcnow(),
                        vos=frozenset(vos), users=users, digest=hashlib.sha256(canonical).hexdigest())

    def _add_members(self, people: Dict[str, _Person], vo: str, members: Any, where: str,
                     group: Optional[str]) -> None:
        if not isinstance(members, list):
            raise BadInput(f"Perun RPC getCompleteRichMembers for {where}: expected a list of members")
        for index, member in enumerate(members):
            label = f"Perun {where} member [{index}]"
            if not isinstance(member, dict):
                raise BadInput(f"{label}: expected an object")
            label = f"Perun {where} member {member.get('id')} (user {member.get('userId')})"
            attributes = _attributes(member, label)
            login = attributes.get(self.settings.login_attribute)
            if not isinstance(login, str) or not login.strip():
                raise BadInput(f"{label}: no {self.settings.login_attribute}")
            status = _status(member.get("status"), f"{label}: status")
            if member.get("groupStatus") is not None:
                group_status = _status(member.get("groupStatus"), f"{label}: groupStatus")
                status = min(status, group_status, key=_STATUS_RANK.__getitem__)
            person = people.get(login.strip())
            if person is None:
                person = people[login.strip()] = _Person(login.strip())
            person.update(member, attributes, label)
            person.add(vo, status, group)


class _Person:
    """A user being assembled from the members of several VOs and groups."""

    def __init__(self, login: str) -> None:
        self.login = login
        self.display_name: Optional[str] = None
        self.email: Optional[str] = None
        self.dns: Tuple[str, ...] = ()
        self.keys: Tuple[str, ...] = ()
        self.memberships: Dict[str, Membership] = {}

    def update(self, member: Mapping[str, Any], attributes: Mapping[str, Any], label: str) -> None:
        user = member.get("user") or {}
        if not isinstance(user, dict):
            raise BadInput(f"{label}: user: expected an object")
        parts = [user.get(k) for k in ("titleBefore", "firstName", "middleName", "lastName", "titleAfter")]
        self.display_name = " ".join(str(p).strip() for p in parts if p and str(p).strip()) or None
        mail = attributes.get(MAIL_ATTRIBUTE)
        self.email = mail.strip() if isinstance(mail, str) and mail.strip() else None
        raw_dns = attributes.get(DNS_ATTRIBUTE)
        values = _values(raw_dns, f"{label}: {DNS_ATTRIBUTE}")
        dns: List[str] = []
        for value in values:
            try:
                dn = normalize_dn(str(value))
            except X509Error as exc:
                raise BadInput(f"{label}: {DNS_ATTRIBUTE}: {exc}") from exc
            if dn not in dns:
                dns.append(dn)
        self.dns = tuple(dns)
        keys = _values(attributes.get(SSH_ATTRIBUTE), f"{label}: {SSH_ATTRIBUTE}")
        self.keys = tuple(dict.fromkeys(str(k).strip() for k in keys if str(k).strip()))

    def add(self, vo: str, status: MemberStatus, group: Optional[str]) -> None:
        known = self.memberships.get(vo)
        if known is None or _STATUS_RANK[status] > _STATUS_RANK[known.status]:
            self.memberships[vo] = Membership(vo=vo, status=status, group=group)

    def user(self) -> PerunUser:
        return PerunUser(id=self.login, display_name=self.display_name, email=self.email, x509_dns=self.dns,
                         ssh_keys=self.keys, memberships=tuple(self.memberships[vo] for vo in sorted(self.memberships)))


def _attributes(member: Mapping[str, Any], label: str) -> Dict[str, Any]:
    """``namespace:friendlyName`` -> value of the member's user and member attributes."""
    result: Dict[str, Any] = {}
    for key in ("userAttributes", "memberAttributes"):
        listed = member.get(key) or []
        if not isinstance(listed, list):
            raise BadInput(f"{label}: {key}: expected a list of attributes")
        for attribute in listed:
            if not isinstance(attribute, dict) or "namespace" not in attribute or "friendlyName" not in attribute:
                raise BadInput(f"{label}: {key}: malformed attribute {str(attribute)[:80]!r}")
            result[f"{attribute['namespace']}:{attribute['friendlyName']}"] = attribute.get("value")
    return result


def _values(value: Any, where: str) -> List[Any]:
    """The values of a Perun list, map or string attribute (map: its values); anything else is BadInput."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    raise BadInput(f"{where}: expected a list, a map or a string, got {type(value).__name__}")


def _status(value: Any, where: str) -> MemberStatus:
    try:
        return MemberStatus(str(value).upper())
    except ValueError as exc:
        raise BadInput(f"{where}: {value!r} is not a Perun member status") from exc


def _perun_error(response: requests.Response) -> Optional[str]:
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, dict) and ("errorId" in data or "name" in data):
        return f": {data.get('name', 'error')}: {data.get('message', '')} (errorId {data.get('errorId')})"
    return None


def _params(params: Mapping[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if k in ("id", "vo", "group")}
    return f" {shown}" if shown else ""


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:300] + "..."


def _user_json(user: PerunUser) -> Dict[str, Any]:
    return {"id": user.id, "display_name": user.display_name, "email": user.email, "x509_dns": list(user.x509_dns),
            "ssh_keys": list(user.ssh_keys),
            "memberships": [{"vo": m.vo, "status": m.status.value, "group": m.group} for m in user.memberships]}
