"""Diff the membership snapshot against the cloud's users: the plan of changes.

Pure computation (no I/O but the ``vm_count`` callback for deletion candidates), so that dry-run,
the safety checks and the benchmark see exactly what an apply would do.

Rules:

* Only users carrying the marker property (``<managed_property>=yes``) are ours; others are never
  touched (a name clash is reported as a conflict).  Protected users (``oneadmin``, ...) are never
  touched even when marked.
* A VO is *covered* when the input speaks about it; users of VOs that are configured here but not
  covered keep their groups and their enabled state; VOs not configured here are ignored.
* VALID members (not banned) get an enabled account in their VOs' groups with their DNs, SSH keys,
  e-mail, display name and the VO quota; attributes that drift are updated.
* A managed user with no VALID membership left in any covered VO is disabled (groups kept so that a
  return within the grace period restores everything); after ``grace_period`` it is deleted when
  ``delete_policy`` allows (``no_vms``: only if it owns no VMs; ``never``; ``always``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..cloud.base import Quota, User, UserSpec
from ..errors import FedcloudSiteError
from .model import MemberStatus, PerunUser, Snapshot

MANAGED_VALUE = "yes"
PERUN_ID_PROPERTY = "PERUN_ID"

#: fields compared between the desired and the current user, in report order
FIELDS = ("groups", "email", "display_name", "x509_dns", "ssh_keys", "quota", "properties", "enabled")


_TRUE = ("yes", "true", "1")


def is_managed(properties: Mapping[str, Any], marker: str) -> bool:
    """Whether a user carries our marker; names and values compare loosely across backends
    (OpenNebula ``FEDCLOUD_SITE_MANAGED="yes"``, Keystone ``fedcloud_site_managed: true``)."""
    wanted = marker.upper()
    return any(str(key).upper() == wanted and str(value).strip().lower() in _TRUE
               for key, value in properties.items())


class PlanError(FedcloudSiteError):
    """The input cannot be mapped onto local users (e.g. two Perun users give one local name)."""


@dataclass(frozen=True)
class VOTarget:
    """A configured VO as the cloud knows it."""

    name: str
    group_id: str
    quota: Optional[Quota] = None


@dataclass(frozen=True)
class Action:
    """One change to one user."""

    kind: str  # create, update, enable, disable, delete
    name: str
    user_id: Optional[str]
    spec: Optional[UserSpec]  # full desired state for create/update; None: set_user_enabled or delete
    reason: str
    changes: Tuple[str, ...] = ()
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    """A disabled user waiting for deletion."""

    name: str
    user_id: str
    since: datetime
    due: datetime
    blocked: Optional[str] = None  # why it is not deleted although due


@dataclass
class Plan:
    actions: List[Action] = field(default_factory=list)
    pending: List[Pending] = field(default_factory=list)
    conflicts: List[str] = field(default_factory=list)  # local names taken by users we do not manage
    disabled_since: Dict[str, datetime] = field(default_factory=dict)  # managed, disabled, waiting
    managed: int = 0  # managed users found in the cloud
    unchanged: int = 0
    ignored: int = 0  # managed users of VOs not covered / not configured
    protected: int = 0

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind)

    @property
    def counts(self) -> Dict[str, int]:
        kinds = ("create", "update", "enable", "disable", "delete")
        return {k: self.count(k) for k in kinds}

    @property
    def risky_changes(self) -> int:
        """Changes to existing managed users that the change threshold limits (updates, disables)."""
        return sum(1 for a in self.actions if a.kind in ("update", "disable"))


@dataclass
class _Account:
    name: str
    user: PerunUser
    listed: List[str] = field(default_factory=list)  # covered VOs the user is listed in (any status)
    valid: List[str] = field(default_factory=list)  # covered VOs the user is a VALID member of


def account_name(template: str, user_id: str, vo: str) -> str:
    return template.format(id=user_id, vo=vo)


def _accounts(snapshot: Snapshot, targets: Mapping[str, VOTarget], covered: FrozenSet[str],
              template: str) -> Dict[str, _Account]:
    per_vo = "{vo}" in template
    accounts: Dict[str, _Account] = {}
    owner: Dict[str, str] = {}
    for user in snapshot.users:
        for membership in user.memberships:
            vo = membership.vo
            if vo not in covered or vo not in targets:
                continue
            name = account_name(template, user.id, vo if per_vo else "")
            account = accounts.get(name)
            if account is None:
                if name in owner and owner[name] != user.id:
                    raise PlanError(f"users {owner[name]!r} and {user.id!r} both map to local user {name!r} "
                                    f"(perun.user_name {template!r})")
                owner[name] = user.id
                account = accounts[name] = _Account(name, user)
            elif account.user.id != user.id:
                raise PlanError(f"users {account.user.id!r} and {user.id!r} both map to local user {name!r} "
                                f"(perun.user_name {template!r})")
            if vo not in account.listed:
                account.listed.append(vo)
            if not user.banned and membership.status is MemberStatus.VALID and vo not in account.valid:
                account.valid.append(vo)
    order = {vo: i for i, vo in enumerate(targets)}
    for account in accounts.values():
        account.valid.sort(key=order.__getitem__)
    return accounts


def _max_quota(quotas: Iterable[Optional[Quota]]) -> Optional[Quota]:
    present = [q for q in quotas if q is not None]
    if not present:
        return None

    def top(values: Sequence[Optional[int]]) -> Optional[int]:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    return Quota(instances=top([q.instances for q in present]), cores=top([q.cores for q in present]),
                 ram_mb=top([q.ram_mb for q in present]))


def _same(name: str, current: Any, desired: Any) -> bool:
    """Whether a field needs no change; lists compare as sets, quota only in the limits we set."""
    if name in ("groups", "x509_dns", "ssh_keys"):
        return frozenset(current) == frozenset(desired)
    if name == "quota":
        if desired is None:
            return True
        return current is not None and all(current.get(k) == v for k, v in desired.items() if v is not None)
    return bool(current == desired)


def _plain(value: Any) -> Any:
    if isinstance(value, Quota):
        return {"instances": value.instances, "cores": value.cores, "ram_mb": value.ram_mb}
    if isinstance(value, (list, tuple, frozenset, set)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass
class Planner:
    """Computes the :class:`Plan` for one snapshot against the cloud's users."""

    targets: Mapping[str, VOTarget]  # configured VOs with their local group, in config order
    template: str = "{id}"
    managed_property: str = "FEDCLOUD_SITE_MANAGED"
    protected_users: FrozenSet[str] = frozenset()
    grace_period: timedelta = timedelta(days=30)
    delete_policy: str = "no_vms"
    _applied_quotas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    def plan(self, snapshot: Snapshot, covered: Iterable[str], users: Iterable[User], now: datetime,
             disabled_since: Optional[Mapping[str, datetime]] = None, adoptable: Iterable[str] = (),
             vm_count: Optional[Callable[[User], int]] = None,
             applied_quotas: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Plan:
        """The changes making the cloud's users match ``snapshot`` for the ``covered`` VOs.

        ``applied_quotas`` (user name -> limits last set) stands in for the quota of users whose
        backend does not report it, so that unchanged limits are not set again on every run.
        """
        self._applied_quotas = applied_quotas or {}
        covered_set = frozenset(vo for vo in covered if vo in self.targets)
        disabled_since = disabled_since or {}
        adopt: Set[str] = set(adoptable)
        accounts = _accounts(snapshot, self.targets, covered_set, self.template)
        group_vo = {t.group_id: vo for vo, t in self.targets.items()}
        plan = Plan()
        seen: Set[str] = set()
        for user in users:
            if user.name in self.protected_users:
                plan.protected += 1
                if user.name in accounts:
                    plan.conflicts.append(user.name)
                    seen.add(user.name)
                continue
            if not is_managed(user.properties, self.managed_property) and user.name not in adopt:
                if user.name in accounts:
                    plan.conflicts.append(user.name)
                    seen.add(user.name)
                continue
            plan.managed += 1
            seen.add(user.name)
            self._existing(plan, user, accounts.get(user.name), covered_set, group_vo, now, disabled_since,
                           vm_count)
        for name, account in accounts.items():
            if name in seen or not account.valid:
                continue
            if name in self.protected_users:
                plan.conflicts.append(name)  # never create an account under a protected name
                continue
            spec = self._spec(account)
            plan.actions.append(Action("create", name, None, spec,
                                       reason=f"VALID member of {', '.join(account.valid)}",
                                       changes=FIELDS[:-1], after=self._view(spec)))
        return plan

    # -- one existing managed user -----------------------------------------------------------------
    def _existing(self, plan: Plan, user: User, account: Optional[_Account], covered: FrozenSet[str],
                  group_vo: Mapping[str, str], now: datetime, disabled_since: Mapping[str, datetime],
                  vm_count: Optional[Callable[[User], int]]) -> None:
        user_vos = {group_vo[g] for g in user.groups if g in group_vo}
        in_covered = bool(user_vos & covered)
        in_uncovered = bool(user_vos - covered)
        if account is None and not in_covered:
            plan.ignored += 1  # a user of VOs this input does not speak about, or not configured here
            if user.name in disabled_since:
                plan.disabled_since[user.name] = disabled_since[user.name]
            return
        valid = account.valid if account is not None else []
        keep_access = bool(valid) or in_uncovered  # still (possibly) a member of some VO
        if keep_access:
            covered_groups = {self.targets[vo].group_id for vo in covered}
            valid_groups = [self.targets[vo].group_id for vo in valid]
            groups = [g for g in user.groups if g not in covered_groups or g in valid_groups]
            groups += [g for g in valid_groups if g not in groups]
            enabled = True if valid else user.enabled
        else:  # disabled with its groups kept, so that a return within the grace period restores it
            groups, enabled = list(user.groups), False
        dns: Sequence[str]
        keys: Sequence[str]
        if account is not None:
            person = account.user
            email, display_name, dns, keys = person.email, person.display_name, person.x509_dns, person.ssh_keys
            quota = _max_quota(self.targets[vo].quota for vo in valid)
            ours = {self.managed_property: MANAGED_VALUE, PERUN_ID_PROPERTY: person.id}
        else:
            email, display_name, dns, keys = user.email, user.display_name, user.x509_dns, user.ssh_keys
            quota, ours = None, {self.managed_property: MANAGED_VALUE}
        changes = []  # compared field by field: most users are unchanged and this is the hot path
        if set(user.groups) != set(groups):
            changes.append("groups")
        if user.email != email:
            changes.append("email")
        if user.display_name != display_name:
            changes.append("display_name")
        if set(user.x509_dns) != set(dns):
            changes.append("x509_dns")
        if set(user.ssh_keys) != set(keys):
            changes.append("ssh_keys")
        known = _plain(user.quota) if user.quota is not None else self._applied_quotas.get(user.name)
        if quota is not None and not _same("quota", known, _plain(quota)):
            changes.append("quota")
        if not is_managed(user.properties, self.managed_property) or (
                PERUN_ID_PROPERTY in ours and user.properties.get(PERUN_ID_PROPERTY) != ours[PERUN_ID_PROPERTY]):
            changes.append("properties")
        if user.enabled != enabled:
            changes.append("enabled")
        if changes:
            properties = dict(user.properties)
            properties.update(ours)
            spec = UserSpec(name=user.name, groups=tuple(groups), email=email, display_name=display_name,
                            enabled=enabled, x509_dns=tuple(dns), ssh_keys=tuple(keys), properties=properties,
                            quota=quota)
            if changes == ["enabled"]:
                kind, action_spec = ("enable" if enabled else "disable"), None
            elif "enabled" in changes:
                kind, action_spec = ("enable" if enabled else "disable"), spec
            else:
                kind, action_spec = "update", spec
            before, after = self._view(user), self._view(spec)
            plan.actions.append(Action(kind, user.name, user.id, action_spec,
                                       self._reason(kind, account, user_vos, covered), tuple(changes),
                                       {f: before[f] for f in changes}, {f: after[f] for f in changes}))
        else:
            plan.unchanged += 1
        if keep_access or user.enabled:
            return  # enabled, or being disabled now (the grace period starts when that is applied)
        since = disabled_since.get(user.name, now)
        plan.disabled_since[user.name] = since
        due = since + self.grace_period
        if now < due:
            plan.pending.append(Pending(user.name, user.id, since, due))
            return
        blocked = None
        if self.delete_policy == "never":
            blocked = "delete_policy is never"
        elif self.delete_policy == "no_vms" and vm_count is not None:
            owned = vm_count(user)
            if owned:
                blocked = f"owns {owned} VM(s)"
        if blocked:
            plan.pending.append(Pending(user.name, user.id, since, due, blocked))
            return
        plan.actions.append(Action("delete", user.name, user.id, None,
                                   f"disabled since {since.isoformat()}, grace period over",
                                   before=self._view(user)))

    def _reason(self, kind: str, account: Optional[_Account], user_vos: Set[str], covered: FrozenSet[str]) -> str:
        if kind == "disable":
            if account is None:
                return f"no longer a member of {', '.join(sorted(user_vos & covered))}"
            statuses = sorted({f"{m.vo} {m.status.value}" for m in account.user.memberships if m.vo in covered})
            banned = " (banned)" if account.user.banned else ""
            return f"not a VALID member: {', '.join(statuses)}{banned}"
        if kind == "enable":
            return f"VALID member of {', '.join(account.valid)}" if account else "re-enabled"
        return "attributes changed in Perun"

    # -- desired state -------------------------------------------------------------------------------
    def _spec(self, account: _Account) -> UserSpec:
        """A new user's state: the groups of its VALID VOs, Perun's attributes, the VO quota, our marker."""
        person = account.user
        properties = {self.managed_property: MANAGED_VALUE, PERUN_ID_PROPERTY: person.id}
        return UserSpec(name=account.name, groups=tuple(self.targets[vo].group_id for vo in account.valid),
                        email=person.email, display_name=person.display_name, enabled=bool(account.valid),
                        x509_dns=person.x509_dns, ssh_keys=person.ssh_keys, properties=properties,
                        quota=_max_quota(self.targets[vo].quota for vo in account.valid))

    def _view(self, item: Any) -> Dict[str, Any]:
        props = item.properties
        return {
            "groups": _plain(item.groups), "email": item.email, "display_name": item.display_name,
            "x509_dns": _plain(item.x509_dns), "ssh_keys": _plain(item.ssh_keys), "quota": _plain(item.quota),
            "properties": {k: props.get(k) for k in (self.managed_property, PERUN_ID_PROPERTY) if k in props},
            "enabled": item.enabled,
        }


