"""Reading the propagation file Perun pushes to the site.

Two formats are accepted, told apart by their first character:

``json`` (the format proposed for this daemon, a ``generic_json_gen``-style push)::

    {"version": "1.0.0", "facility": "site-x-cloud", "generated_at": "2025-01-31T10:00:00Z",
     "vos": ["vo.example.eu"],
     "users": [{"id": "abc123@egi.eu", "display_name": "Jane Doe", "email": "jane@example.org",
                "ssh_keys": ["ssh-ed25519 AAAA... jane"], "x509_dns": ["/DC=org/DC=example/CN=Jane Doe"],
                "memberships": [{"vo": "vo.example.eu", "group": "vo.example.eu:cloud",
                                 "status": "VALID", "roles": ["member"]}],
                "banned": false}]}

``version`` must have major version 1; ``vos`` lists every VO the file covers (a VO listed with no
members has none; a VO not listed is left alone; a file with no users at all is refused by the
safety checks unless forced); members who are not VALID are listed with their
status (``VALID|INVALID|EXPIRED|SUSPENDED|DISABLED``) rather than dropped.  Unknown keys are ignored.

``fedcloud_export`` (the legacy Perun service, removed from Perun in 2021): one line per
(user, VO) of VALID members, fields separated by ASCII RS (``\\x1e``)::

    <vo>_<UID> RS <vo> RS <X.509 DN> RS <preferred mail> RS <sshkey1>|<sshkey2>

The VOs it covers are those present in the file; its time is the file's modification time.

Every error names the file and the line (``fedcloud_export``, JSON syntax) or the record (``users[3]
(id 'x')``) at fault; a file with any bad record is refused as a whole.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from ..x509 import X509Error, normalize_dn
from .model import BadInput, Membership, MemberStatus, PerunUser, Snapshot

RS = "\x1e"
JSON_MAJOR_VERSION = "1"
_STATUSES = ", ".join(s.value for s in MemberStatus)


def read_snapshot(path: Path) -> Snapshot:
    """Parse a propagation file (either format); :class:`BadInput` names the line or record at fault."""
    try:
        data = path.read_bytes()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_snapshot(data, str(path), mtime)


def parse_snapshot(data: bytes, source: str, mtime: Optional[datetime] = None) -> Snapshot:
    """Parse the bytes of a propagation file; ``mtime`` dates inputs that carry no time of their own."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(f"{source}: line {line}: not UTF-8 text") from exc
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise BadInput(f"{source}: empty input (no users at all): refusing to act on it")
    if stripped.startswith("{"):
        return _parse_json(text, source, digest, mtime)
    if RS in text:
        return _parse_fedcloud_export(text, source, digest, mtime)
    raise BadInput(f"{source}: line 1: neither a JSON propagation file nor fedcloud_export "
                   f"(RS-separated) data")


# -- JSON ------------------------------------------------------------------------------------------
def _parse_json(text: str, source: str, digest: str, mtime: Optional[datetime]) -> Snapshot:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(doc, dict):
        raise BadInput(f"{source}: expected a JSON object at the top level")
    version = doc.get("version")
    if not isinstance(version, str) or version.split(".")[0] != JSON_MAJOR_VERSION:
        raise BadInput(f"{source}: version: {version!r} is not supported (expected {JSON_MAJOR_VERSION}.x.y)")
    generated_at = mtime
    if doc.get("generated_at") is not None:
        generated_at = _time(doc["generated_at"], f"{source}: generated_at")
    vos = doc.get("vos")
    if not isinstance(vos, list) or not all(isinstance(v, str) and v for v in vos):
        raise BadInput(f"{source}: vos: expected the list of VO names the file covers")
    users_raw = doc.get("users")
    if not isinstance(users_raw, list):
        raise BadInput(f"{source}: users: expected a list")
    covered = frozenset(vos)
    users: List[PerunUser] = []
    seen: Dict[str, int] = {}
    for index, raw in enumerate(users_raw):
        user = _json_user(raw, f"{source}: users[{index}]", covered)
        if user.id in seen:
            raise BadInput(f"{source}: users[{index}] (id {user.id!r}): duplicate of users[{seen[user.id]}]")
        seen[user.id] = index
        users.append(user)
    return Snapshot(source=source, format="json", generated_at=generated_at, vos=covered, users=tuple(users),
                    digest=digest)


def _time(value: Any, where: str) -> datetime:
    from ..timeutil import parse_time

    try:
        return parse_time(value)
    except ValueError as exc:
        raise BadInput(f"{where}: {exc}") from exc


def _json_user(raw: Any, where: str, covered: FrozenSet[str]) -> PerunUser:
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: expected an object")
    user_id = raw.get("id")
    if not isinstance(user_id, str) or not user_id.strip():
        raise BadInput(f"{where}: id: missing or empty")
    user_id = user_id.strip()
    where = f"{where} (id {user_id!r})"
    memberships_raw = raw.get("memberships")
    if not isinstance(memberships_raw, list):
        raise BadInput(f"{where}: memberships: expected a list")
    memberships = tuple(_json_membership(m, f"{where}: memberships[{i}]", covered)
                        for i, m in enumerate(memberships_raw))
    banned = raw.get("banned", False)
    if not isinstance(banned, bool):
        raise BadInput(f"{where}: banned: expected true or false")
    return PerunUser(id=user_id, display_name=_opt_str(raw.get("display_name"), f"{where}: display_name"),
                     email=_opt_str(raw.get("email"), f"{where}: email"),
                     x509_dns=_dns(_str_list(raw.get("x509_dns"), f"{where}: x509_dns"), f"{where}: x509_dns"),
                     ssh_keys=_keys(_str_list(raw.get("ssh_keys"), f"{where}: ssh_keys")),
                     memberships=memberships, banned=banned)


def _json_membership(raw: Any, where: str, covered: FrozenSet[str]) -> Membership:
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: expected an object")
    vo = raw.get("vo")
    if not isinstance(vo, str) or not vo:
        raise BadInput(f"{where}.vo: missing or empty")
    if vo not in covered:
        raise BadInput(f"{where}: vo {vo!r} is not in the file's vos list")
    status_raw = raw.get("status")
    try:
        status = MemberStatus(str(status_raw).upper())
    except ValueError as exc:
        raise BadInput(f"{where}.status: {status_raw!r} is not one of {_STATUSES}") from exc
    return Membership(vo=vo, status=status, group=_opt_str(raw.get("group"), f"{where}.group"),
                      roles=_str_list(raw.get("roles"), f"{where}.roles"))


def _opt_str(value: Any, where: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInput(f"{where}: expected a string")
    return value.strip() or None


def _str_list(value: Any, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{where}: expected a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _dns(values: Tuple[str, ...], where: str) -> Tuple[str, ...]:
    """DNs in canonical slash form (``/DC=org/.../CN=Jane``), duplicates dropped, order kept."""
    result: List[str] = []
    for i, dn in enumerate(values):
        try:
            canonical = normalize_dn(dn)
        except X509Error as exc:
            raise BadInput(f"{where}[{i}]: {exc}") from exc
        if canonical not in result:
            result.append(canonical)
    return tuple(result)


def _keys(values: Tuple[str, ...]) -> Tuple[str, ...]:
    result: List[str] = []
    for key in values:
        if key not in result:
            result.append(key)
    return tuple(result)


# -- fedcloud_export ----------------------------------------------------------------------------------
def _parse_fedcloud_export(text: str, source: str, digest: str, mtime: Optional[datetime]) -> Snapshot:
    users: List[PerunUser] = []
    seen: Dict[str, int] = {}
    vos = set()
    # not str.splitlines(): it would also split at RS (and the other ASCII separators)
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where = f"{source}: line {number}"
        fields = line.split(RS)
        if len(fields) not in (4, 5):
            raise BadInput(f"{where}: expected 5 RS-separated fields (login, VO, DN, mail, SSH keys), "
                           f"got {len(fields)}")
        login, vo, dn, mail = (f.strip() for f in fields[:4])
        keys = fields[4] if len(fields) == 5 else ""
        if not login:
            raise BadInput(f"{where}: empty login (field 1)")
        if not vo:
            raise BadInput(f"{where} ({login}): empty VO (field 2)")
        if login in seen:
            raise BadInput(f"{where} ({login}): duplicate of line {seen[login]}")
        seen[login] = number
        vos.add(vo)
        users.append(PerunUser(id=login, email=mail or None,
                               x509_dns=_dns((dn,) if dn else (), f"{where} ({login}): DN"),
                               ssh_keys=_keys(tuple(k.strip() for k in keys.split("|") if k.strip())),
                               memberships=(Membership(vo=vo),)))
    if not users:
        raise BadInput(f"{source}: empty input (no users at all): refusing to act on it")
    return Snapshot(source=source, format="fedcloud_export", generated_at=mtime, vos=frozenset(vos),
                    users=tuple(users), digest=digest)
