"""Property: any Perun propagation file (JSON or legacy fedcloud_export) gives a Snapshot or a BadInput
naming the file, never another exception; well-formed files read back to the values written."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List

from hypothesis import given, settings
from hypothesis import strategies as st

from fedcloud_site.perun.formats import RS, parse_snapshot
from fedcloud_site.perun.model import BadInput, MemberStatus, Snapshot
from fedcloud_site.timeutil import parse_time

SOURCE = "/var/spool/perun/fedcloud-site/users.json"
DNS = ["/DC=org/DC=example/CN=Jane Doe", "/C=DE/O=GermanGrid/OU=KIT/CN=John Smith", "/DC=eu/DC=egi/CN=robot 42"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", " ", "VALID", "expired", "1.0.0", "2.0.0", "vo.example.eu", "0001-01-01T00:00:00+01:00",
                     "9999-12-31T23:59:59-01:00", "2025-13-01T00:00:00Z", "2025-01-31T10:00:00Z", "/CN=x",
                     "CN=a/b", "/DC=org/CN=a+CN=b", "ssh-ed25519 AAAA x", "\x00", "\ud800"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)

BASE: Dict[str, Any] = {
    "version": "1.0.0", "facility": "site-x-cloud", "generated_at": "2025-01-31T10:00:00Z",
    "vos": ["vo.example.eu", "other.eu"],
    "users": [
        {"id": "abc123@egi.eu", "display_name": "Jane Doe", "email": "jane@example.org",
         "ssh_keys": ["ssh-ed25519 AAAA jane"], "x509_dns": [DNS[0]],
         "memberships": [{"vo": "vo.example.eu", "group": "vo.example.eu:cloud", "status": "VALID",
                          "roles": ["member"]}], "banned": False},
        {"id": "def456@egi.eu", "memberships": [{"vo": "other.eu", "status": "SUSPENDED"}]},
    ],
}
USER_KEYS = ["id", "display_name", "email", "ssh_keys", "x509_dns", "memberships", "banned"]
MEMBERSHIP_KEYS = ["vo", "group", "status", "roles"]


@st.composite
def json_documents(draw: Any) -> Any:
    """The example file with random values at the keys the parser reads (or a random JSON value)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(["top", "time", "user", "membership", "list"]))
        if target == "time":
            doc["generated_at"] = draw(json_scalars)
        elif target == "top":
            doc[draw(st.sampled_from(["version", "generated_at", "vos", "users"]))] = draw(json_values)
        elif target == "list" and isinstance(doc.get("vos"), list):
            doc["vos"].append(draw(json_scalars))
        elif isinstance(doc.get("users"), list) and doc["users"] and isinstance(doc["users"][0], dict):
            user = doc["users"][draw(st.integers(0, len(doc["users"]) - 1))]
            if not isinstance(user, dict):
                continue
            if target == "user":
                user[draw(st.sampled_from(USER_KEYS))] = draw(json_values)
            elif isinstance(user.get("memberships"), list) and user["memberships"] and \
                    isinstance(user["memberships"][0], dict):
                user["memberships"][0][draw(st.sampled_from(MEMBERSHIP_KEYS))] = draw(json_values)
    return doc


def outcome(data: bytes) -> Any:
    try:
        return parse_snapshot(data, SOURCE)
    except BadInput as exc:
        assert str(exc).startswith(f"{SOURCE}: "), f"error does not name the file: {exc}"
        return exc


def check_snapshot(snapshot: Snapshot) -> None:
    """What the rest of the daemon relies on in a parsed snapshot."""
    ids = [user.id for user in snapshot.users]
    assert len(ids) == len(set(ids)) and all(ids)
    for user in snapshot.users:
        assert all(m.vo in snapshot.vos for m in user.memberships)
    if snapshot.generated_at is not None:
        assert snapshot.generated_at.utcoffset() is not None and snapshot.generated_at.utcoffset().total_seconds() == 0


@settings(max_examples=400, deadline=None)
@given(json_documents())
def test_any_json_document_gives_a_snapshot_or_a_named_error(document):
    result = outcome(json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass"))
    if isinstance(result, Snapshot):
        check_snapshot(result)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_give_a_snapshot_or_a_named_error(data):
    result = outcome(data)
    if isinstance(result, Snapshot):
        check_snapshot(result)


legacy_field = st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(legacy_field | st.sampled_from(DNS + ["", "CN=x/y", "/CN=a+CN=b"]), max_size=6),
                min_size=1, max_size=4))
def test_any_legacy_file_gives_a_snapshot_or_a_named_error(lines):
    text = "\n".join(RS.join(fields) for fields in lines) + "\n"
    result = outcome(text.encode("utf-8", "surrogatepass"))
    if isinstance(result, Snapshot):
        check_snapshot(result)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-@", min_size=1, max_size=12)
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789 .,'-", min_size=1, max_size=20).map(
    str.strip).filter(bool)


@st.composite
def valid_files(draw: Any) -> Dict[str, Any]:
    vos = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    ids = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    users: List[Dict[str, Any]] = []
    for user_id in ids:
        users.append({
            "id": user_id, "display_name": draw(words), "email": f"{draw(names)}@example.org",
            "ssh_keys": draw(st.lists(st.sampled_from(["ssh-ed25519 AAAAC3 a", "ssh-rsa AAAAB3 b"]), unique=True)),
            "x509_dns": draw(st.lists(st.sampled_from(DNS), unique=True, max_size=2)),
            "memberships": [{"vo": vo, "status": draw(st.sampled_from([s.value for s in MemberStatus])),
                             "group": f"{vo}:{draw(names)}", "roles": draw(st.lists(names, max_size=2))}
                            for vo in draw(st.lists(st.sampled_from(vos), unique=True, max_size=len(vos)))],
            "banned": draw(st.booleans()),
        })
    moment = draw(st.datetimes(min_value=parse_time("1970-01-02").replace(tzinfo=None),
                               max_value=parse_time("2999-12-31").replace(tzinfo=None)))
    return {"version": "1.2.0", "generated_at": moment.isoformat() + "Z", "vos": vos, "users": users}


@settings(max_examples=200, deadline=None)
@given(valid_files())
def test_a_well_formed_json_file_reads_back_to_its_values(document):
    snapshot = parse_snapshot(json.dumps(document).encode(), SOURCE)
    assert snapshot.vos == frozenset(document["vos"])
    assert snapshot.generated_at == parse_time(document["generated_at"])
    assert len(snapshot.users) == len(document["users"])
    for user, raw in zip(snapshot.users, document["users"]):
        assert (user.id, user.display_name, user.email, user.banned) == (
            raw["id"], raw["display_name"], raw["email"], raw["banned"])
        assert list(user.ssh_keys) == raw["ssh_keys"] and list(user.x509_dns) == raw["x509_dns"]
        assert [(m.vo, m.status.value, m.group, list(m.roles)) for m in user.memberships] == [
            (m["vo"], m["status"], m["group"], m["roles"]) for m in raw["memberships"]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, names, st.sampled_from(DNS + [""]), names,
                          st.lists(st.sampled_from(["ssh-ed25519 AAAAC3 a", "ssh-rsa AAAAB3 b"]), unique=True)),
                min_size=1, max_size=4, unique_by=lambda row: row[0]))
def test_a_well_formed_legacy_file_reads_back_to_its_values(rows):
    text = "".join(RS.join([login, vo, dn, mail, "|".join(keys)]) + "\n" for login, vo, dn, mail, keys in rows)
    snapshot = parse_snapshot(text.encode(), SOURCE)
    assert snapshot.vos == frozenset(row[1] for row in rows)
    assert [(u.id, u.memberships[0].vo, u.x509_dns, u.email, list(u.ssh_keys)) for u in snapshot.users] == [
        (login, vo, (dn,) if dn else (), mail, keys) for login, vo, dn, mail, keys in rows]


def test_a_generation_time_out_of_range_names_the_file_and_field():
    for value in ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", 1e20, -1e300, 10 ** 30]:
        document = dict(BASE, generated_at=value)
        result = outcome(json.dumps(document).encode())
        assert isinstance(result, BadInput), value
        assert str(result).startswith(f"{SOURCE}: generated_at: "), result


# -- Perun RPC answers (getCompleteRichMembers) ------------------------------------------------------------
def _rpc_members() -> Any:
    from fedcloud_site.perun.rpc import DNS_ATTRIBUTE, MAIL_ATTRIBUTE, SSH_ATTRIBUTE
    from fedcloud_site.perun.settings import EGI_LOGIN_ATTRIBUTE

    def attribute(name: str, value: Any) -> Dict[str, Any]:
        namespace, _, friendly = name.rpartition(":")
        return {"namespace": namespace, "friendlyName": friendly, "value": value}

    return [{"id": 7, "userId": 70, "status": "VALID", "user": {"firstName": "Jane", "lastName": "Doe"},
             "userAttributes": [attribute(EGI_LOGIN_ATTRIBUTE, "jane@egi.eu"), attribute(MAIL_ATTRIBUTE, "j@x.org"),
                                attribute(DNS_ATTRIBUTE, {"/DC=org/CN=CA": DNS[0]}),
                                attribute(SSH_ATTRIBUTE, ["ssh-ed25519 AAAA j"])]}]


@st.composite
def rpc_answers(draw: Any) -> Any:
    """A getCompleteRichMembers answer with random values where the parser reads (or a random value)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    members = _rpc_members()
    member = members[0]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["member", "attribute", "user"]))
        if where == "member":
            member[draw(st.sampled_from(["status", "groupStatus", "user", "userAttributes", "memberAttributes"]))] = \
                draw(json_values)
        elif where == "user" and isinstance(member.get("user"), dict):
            member["user"][draw(st.sampled_from(["firstName", "lastName", "titleBefore"]))] = draw(json_values)
        elif isinstance(member.get("userAttributes"), list) and member["userAttributes"]:
            index = draw(st.integers(0, len(member["userAttributes"]) - 1))
            if isinstance(member["userAttributes"][index], dict):
                member["userAttributes"][index]["value"] = draw(json_values)
    return members


@settings(max_examples=300, deadline=None)
@given(rpc_answers())
def test_any_rpc_member_list_gives_users_or_a_named_error(answer):
    from fedcloud_site.perun.rpc import PerunRPC
    from fedcloud_site.perun.settings import RPCSettings

    client = PerunRPC(RPCSettings(url="https://perun.example.org", auth="ba", username="u"))
    people: Dict[str, Any] = {}
    try:
        client._add_members(people, "vo.example.eu", answer, "VO 1", group=None)
    except BadInput as exc:
        assert str(exc).startswith("Perun "), exc
        return
    for person in people.values():
        user = person.user()
        assert user.id and all(m.vo == "vo.example.eu" for m in user.memberships)
