"""A Perun RPC simulator: VOs, groups, users and members behind the real JSON RPC URL scheme.

Serves ``/<auth>/rpc/json/<manager>/<method>`` over HTTPS on 127.0.0.1 (``POST`` with a JSON object
of parameters, or ``GET`` with URL parameters, lists as ``name[]=``), with Perun's answer shapes
(``Vo``, ``Group``, ``User``, ``RichMember`` with ``userAttributes`` as ``Attribute`` beans) and its
error form: HTTP 400 with ``{"errorId": ..., "name": "<Exception>", "message": ...}``.

Authentication as Perun's Apache front end does it: ``/ba/`` needs HTTP basic credentials,
``/cert/`` a client certificate issued by the configured CA (and, if given, one of the allowed
DNs); otherwise HTTP 401.  Faults (5xx, delays for timeouts, dropped connections) are injected
through :attr:`PerunSim.server` (route names are ``<manager>/<method>``).

Methods: ``vosManager/getVoById``, ``vosManager/getVos``, ``groupsManager/getGroupById``,
``groupsManager/getAllGroups``, ``membersManager/getCompleteRichMembers`` (by ``vo`` or ``group``,
``attrsNames``, ``allowedStatuses``), ``membersManager/getMemberById``, ``usersManager/getUserById``.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set

from fedcloud_site.demo.http import Request, Response, SimServer, json_response, peer_dn, server_ssl_context

LOGIN_EGI = "urn:perun:user:attribute-def:virt:optional-login-namespace:egi"
PREFERRED_MAIL = "urn:perun:user:attribute-def:def:preferredMail"
CERT_DNS = "urn:perun:user:attribute-def:virt:userCertDNs"
SSH_KEYS = "urn:perun:user:attribute-def:def:sshPublicKey"

#: attribute definitions the simulator knows: name -> (id, Java type)
ATTRIBUTES: Dict[str, tuple] = {
    LOGIN_EGI: (3001, "java.lang.String"),
    PREFERRED_MAIL: (3002, "java.lang.String"),
    CERT_DNS: (3003, "java.util.LinkedHashMap"),
    SSH_KEYS: (3004, "java.util.ArrayList"),
    "urn:perun:user:attribute-def:def:phone": (3005, "java.lang.String"),
}
STATUSES = ("VALID", "INVALID", "SUSPENDED", "EXPIRED", "DISABLED")


class PerunException(Exception):
    """Answered as HTTP 400 with Perun's error JSON."""

    def __init__(self, name: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.name = name
        self.extra = extra


@dataclass
class SimUser:
    id: int
    first_name: str
    last_name: str
    attributes: Dict[str, Any] = field(default_factory=dict)


@dataclass
class SimMember:
    id: int
    user_id: int
    vo_id: int
    status: str = "VALID"


@dataclass
class SimGroup:
    id: int
    vo_id: int
    name: str
    members: Dict[int, str] = field(default_factory=dict)  # member id -> group status (VALID / EXPIRED)


def _namespace(name: str) -> tuple:
    parts = name.split(":")
    return ":".join(parts[:5]), ":".join(parts[5:])


class PerunSim:
    """The simulated Perun (see module docs)."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca_file: Optional[Path] = None,
                 username: str = "perun-site", password: str = "perun-secret",
                 allowed_dns: Optional[Iterable[str]] = None, host: str = "127.0.0.1") -> None:
        self.server = SimServer(host=host, ssl_context=server_ssl_context(cert_file, key_file, client_ca_file))
        self.username = username
        self.password = password
        self.allowed_dns: Optional[Set[str]] = set(allowed_dns) if allowed_dns is not None else None
        self.vos: Dict[int, Dict[str, Any]] = {}
        self.groups: Dict[int, SimGroup] = {}
        self.users: Dict[int, SimUser] = {}
        self.members: Dict[int, SimMember] = {}
        self._ids = itertools.count(100)
        self._lock = threading.Lock()
        self._methods = {
            "vosManager/getVoById": self._get_vo,
            "vosManager/getVos": self._get_vos,
            "groupsManager/getGroupById": self._get_group,
            "groupsManager/getAllGroups": self._get_all_groups,
            "membersManager/getCompleteRichMembers": self._complete_rich_members,
            "membersManager/getMemberById": self._get_member,
            "usersManager/getUserById": self._get_user,
        }
        for name in self._methods:
            manager, method = name.split("/")
            pattern = rf"/(?P<auth>[a-z]+)/rpc/json/{manager}/{method}"
            for verb in ("GET", "POST"):
                self.server.route(verb, pattern, name, self._serve)
        for verb in ("GET", "POST"):
            self.server.route(verb, r"/(?P<auth>[a-z]+)/rpc/json/(?P<manager>\w+)/(?P<method>\w+)", "unknown",
                              self._serve)

    # -- data set-up ------------------------------------------------------------------------------------
    def _next(self) -> int:
        with self._lock:
            return next(self._ids)

    def add_vo(self, short_name: str, name: Optional[str] = None, vo_id: Optional[int] = None) -> int:
        vo_id = vo_id if vo_id is not None else self._next()
        self.vos[vo_id] = {"id": vo_id, "name": name or short_name, "shortName": short_name, "beanName": "Vo"}
        return vo_id

    def add_group(self, vo_id: int, name: str, group_id: Optional[int] = None) -> int:
        group_id = group_id if group_id is not None else self._next()
        self.groups[group_id] = SimGroup(group_id, vo_id, name)
        return group_id

    def add_user(self, login: Optional[str], first_name: str = "Jane", last_name: str = "Doe",
                 email: Optional[str] = None, dns: Optional[Mapping[str, str]] = None,
                 ssh_keys: Sequence[str] = ()) -> int:
        """A person; ``dns`` maps issuer DN -> subject DN, as Perun's ``userCertDNs``."""
        user_id = self._next()
        attributes: Dict[str, Any] = {}
        if login is not None:
            attributes[LOGIN_EGI] = login
        if email is not None:
            attributes[PREFERRED_MAIL] = email
        if dns:
            attributes[CERT_DNS] = dict(dns)
        if ssh_keys:
            attributes[SSH_KEYS] = list(ssh_keys)
        self.users[user_id] = SimUser(user_id, first_name, last_name, attributes)
        return user_id

    def set_attribute(self, user_id: int, name: str, value: Any) -> None:
        if value is None:
            self.users[user_id].attributes.pop(name, None)
        else:
            self.users[user_id].attributes[name] = value

    def add_member(self, vo_id: int, user_id: int, status: str = "VALID", groups: Sequence[int] = ()) -> int:
        member_id = self._next()
        self.members[member_id] = SimMember(member_id, user_id, vo_id, status)
        for group_id in groups:
            self.groups[group_id].members[member_id] = "VALID"
        return member_id

    def set_status(self, member_id: int, status: str) -> None:
        assert status in STATUSES
        self.members[member_id].status = status

    def remove_member(self, member_id: int) -> None:
        self.members.pop(member_id)
        for group in self.groups.values():
            group.members.pop(member_id, None)

    # -- serving --------------------------------------------------------------------------------------------
    def start(self) -> PerunSim:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> PerunSim:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _unauthorized(self, auth: str, why: str) -> Response:
        headers = {"Content-Type": "text/html; charset=iso-8859-1"}
        if auth == "ba":
            headers["WWW-Authenticate"] = 'Basic realm="Perun RPC"'
        body = f"<html><head><title>401 Unauthorized</title></head><body><p>{why}</p></body></html>"
        return Response(401, body, headers)

    def _authenticate(self, request: Request) -> Optional[Response]:
        auth = request.match.group("auth")
        if auth == "ba":
            header = request.headers.get("Authorization") or ""
            if not header.startswith("Basic "):
                return self._unauthorized(auth, "credentials required")
            try:
                user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return self._unauthorized(auth, "bad credentials")
            if user != self.username or password != self.password:
                return self._unauthorized(auth, "bad credentials")
            return None
        if auth == "cert":
            dn = peer_dn(request.client_cert)
            if dn is None:
                return self._unauthorized(auth, "a client certificate is required")
            if self.allowed_dns is not None and dn not in self.allowed_dns:
                return Response(403, f"<html><body><p>{dn} is not allowed</p></body></html>",
                                {"Content-Type": "text/html"})
            return None
        return self._unauthorized(auth, f"authentication {auth!r} is not offered here")

    def _serve(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        path = request.path.split("/rpc/json/", 1)[1]
        handler = self._methods.get(path)
        try:
            if handler is None:
                raise PerunException("RpcException", f"No method {path} in Perun RPC", type="UNKNOWN_METHOD")
            params = self._params(request)
            with self._lock:
                return json_response(handler(params))
        except PerunException as exc:
            body = {"errorId": secrets.token_hex(6), "name": exc.name, "message": str(exc), **exc.extra}
            return json_response(body, 400)

    @staticmethod
    def _params(request: Request) -> Dict[str, Any]:
        if request.method == "POST":
            try:
                data = request.json()
            except ValueError:
                raise PerunException("RpcException", "Wrong parameters: body is not JSON",
                                     type="CANNOT_DESERIALIZE_VALUE") from None
            if data is None:
                return {}
            if not isinstance(data, dict):
                raise PerunException("RpcException", "Wrong parameters: expected a JSON object",
                                     type="CANNOT_DESERIALIZE_VALUE")
            return data
        params: Dict[str, Any] = {}
        for key, values in request.query.items():
            if key.endswith("[]"):
                params[key[:-2]] = list(values)
            else:
                params[key] = values[-1]
        return params

    # -- methods --------------------------------------------------------------------------------------------
    @staticmethod
    def _int(params: Mapping[str, Any], name: str) -> int:
        if name not in params:
            raise PerunException("RpcException", f"Missing mandatory parameter '{name}'", type="MISSING_VALUE")
        try:
            return int(params[name])
        except (TypeError, ValueError):
            raise PerunException("RpcException", f"Parameter '{name}' is not a number",
                                 type="CANNOT_DESERIALIZE_VALUE") from None

    def _vo(self, vo_id: int) -> Dict[str, Any]:
        if vo_id not in self.vos:
            raise PerunException("VoNotExistsException", f"Vo with id {vo_id} does not exist")
        return self.vos[vo_id]

    def _group(self, group_id: int) -> SimGroup:
        if group_id not in self.groups:
            raise PerunException("GroupNotExistsException", f"Group with id {group_id} does not exist")
        return self.groups[group_id]

    def _get_vo(self, params: Mapping[str, Any]) -> Any:
        return self._vo(self._int(params, "id"))

    def _get_vos(self, params: Mapping[str, Any]) -> Any:
        return list(self.vos.values())

    def _group_bean(self, group: SimGroup) -> Dict[str, Any]:
        return {"id": group.id, "voId": group.vo_id, "name": group.name, "shortName": group.name.split(":")[-1],
                "parentGroupId": None, "description": "", "beanName": "Group"}

    def _get_group(self, params: Mapping[str, Any]) -> Any:
        return self._group_bean(self._group(self._int(params, "id")))

    def _get_all_groups(self, params: Mapping[str, Any]) -> Any:
        vo_id = self._int(params, "vo")
        self._vo(vo_id)
        return [self._group_bean(g) for g in self.groups.values() if g.vo_id == vo_id]

    def _user_bean(self, user: SimUser) -> Dict[str, Any]:
        return {"id": user.id, "uuid": f"00000000-0000-4000-8000-{user.id:012d}", "firstName": user.first_name,
                "lastName": user.last_name, "middleName": None, "titleBefore": None, "titleAfter": None,
                "serviceUser": False, "sponsoredUser": False, "specificUser": False, "majorSpecificType": "NORMAL",
                "beanName": "User"}

    def _get_user(self, params: Mapping[str, Any]) -> Any:
        user_id = self._int(params, "id")
        if user_id not in self.users:
            raise PerunException("UserNotExistsException", f"User with id {user_id} does not exist")
        return self._user_bean(self.users[user_id])

    def _member_bean(self, member: SimMember) -> Dict[str, Any]:
        return {"id": member.id, "userId": member.user_id, "voId": member.vo_id, "status": member.status,
                "membershipType": "DIRECT", "sourceGroupId": None, "sponsored": False, "beanName": "Member"}

    def _get_member(self, params: Mapping[str, Any]) -> Any:
        member_id = self._int(params, "id")
        if member_id not in self.members:
            raise PerunException("MemberNotExistsException", f"Member with id {member_id} does not exist")
        return self._member_bean(self.members[member_id])

    def _attribute(self, name: str, value: Any) -> Dict[str, Any]:
        attr_id, java_type = ATTRIBUTES[name]
        namespace, friendly = _namespace(name)
        return {"id": attr_id, "friendlyName": friendly, "namespace": namespace, "type": java_type,
                "value": value, "displayName": friendly, "description": "", "entity": "user",
                "unique": False, "writable": True, "beanName": "Attribute"}

    def _complete_rich_members(self, params: Mapping[str, Any]) -> Any:
        names = params.get("attrsNames")
        if names is None:
            names = list(ATTRIBUTES)
        if not isinstance(names, list):
            raise PerunException("RpcException", "attrsNames must be a list", type="CANNOT_DESERIALIZE_VALUE")
        for name in names:
            if name not in ATTRIBUTES:
                raise PerunException("AttributeNotExistsException", f"Attribute {name} does not exist")
        statuses = params.get("allowedStatuses") or list(STATUSES)
        group: Optional[SimGroup] = None
        if "vo" in params:
            vo_id = self._int(params, "vo")
            self._vo(vo_id)
            candidates: List[SimMember] = [m for m in self.members.values() if m.vo_id == vo_id]
        elif "group" in params:
            group = self._group(self._int(params, "group"))
            candidates = [self.members[mid] for mid in group.members if mid in self.members]
        else:
            raise PerunException("RpcException", "Missing mandatory parameter 'vo' or 'group'", type="MISSING_VALUE")
        result = []
        for member in sorted(candidates, key=lambda m: m.id):
            if member.status not in statuses:
                continue
            user = self.users[member.user_id]
            bean = self._member_bean(member)
            bean["beanName"] = "RichMember"
            if group is not None:
                bean["groupStatus"] = group.members[member.id]
            bean["user"] = self._user_bean(user)
            bean["userExtSources"] = []
            bean["userAttributes"] = [self._attribute(n, user.attributes.get(n)) for n in names]
            bean["memberAttributes"] = []
            result.append(bean)
        return result
