"""Applying a plan to the cloud: journaled, audited, one user's failure isolated from the others.

Every action is idempotent against the cloud as it is *now*: a create whose user already exists
(the run before crashed after creating it) becomes an update that completes it; an update, enable
or disable of a user that is gone is skipped; a delete re-checks the user's VMs first.  An
unreachable cloud or rejected credentials stop the apply (the journal keeps the rest for the next
run); any other error fails that one action and the apply goes on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from ..cloud.base import CloudAuthError, CloudBackend, CloudUnavailable, NotFound, User
from ..timeutil import parse_time
from .audit import AuditLog
from .plan import Action
from .state import Journal, SyncState

DONE, FAILED, SKIPPED, STARTED = "done", "failed", "skipped", "started"


@dataclass
class ApplyResult:
    phases: Dict[int, str] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)  # "<kind> <user>: <error>"
    aborted: Optional[str] = None  # why the apply stopped before the end (cloud down, shutdown)

    def count(self, actions: List[Action], kind: str, phase: str = DONE) -> int:
        return sum(1 for i, a in enumerate(actions) if a.kind == kind and self.phases.get(i) == phase)


class Applier:
    """Runs the actions of a plan (see module docs)."""

    def __init__(self, cloud: CloudBackend, journal: Journal, audit: AuditLog, input_info: Mapping[str, Any],
                 log: Any, stopping: Callable[[], bool], vm_count: Callable[[str], int],
                 delete_policy: str = "no_vms") -> None:
        self.cloud = cloud
        self.journal = journal
        self.audit = audit
        self.input_info = input_info
        self.log = log
        self.stopping = stopping
        self.vm_count = vm_count
        self.delete_policy = delete_policy

    def run(self, actions: List[Action], phases: Optional[Mapping[int, str]] = None,
            current: Optional[Mapping[str, User]] = None) -> ApplyResult:
        """Apply the actions not yet done; ``current`` (users by name) switches on the resume checks."""
        result = ApplyResult(phases=dict(phases or {}))
        for seq, action in enumerate(actions):
            if result.phases.get(seq) in (DONE, SKIPPED):
                continue
            if self.stopping():
                result.aborted = "shutdown requested"
                break
            self.journal.mark(seq, STARTED)
            try:
                phase, detail, user_id = self._apply(action, current)
            except (CloudUnavailable, CloudAuthError) as exc:
                self._failed(result, seq, action, exc)
                result.aborted = f"cloud unavailable: {exc}"
                break
            except Exception as exc:  # noqa: BLE001 - one user's failure must not stop the others
                self._failed(result, seq, action, exc)
                continue
            result.phases[seq] = phase
            if phase == DONE:  # audit first: a crash before the journal line redoes (and re-audits) the action
                self.audit.record(action, "ok" if not detail else f"ok ({detail})", self.input_info, user_id)
            self.journal.mark(seq, phase, detail)
            if phase == DONE:
                self.log.info("user changed", action=action.kind, user=action.name, reason=action.reason,
                              changes=",".join(action.changes) or None)
            else:
                self.log.info("user change skipped", action=action.kind, user=action.name, why=detail)
        return result

    def _failed(self, result: ApplyResult, seq: int, action: Action, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        result.phases[seq] = FAILED
        result.errors.append(f"{action.kind} {action.name}: {message}")
        self.journal.mark(seq, FAILED, message)
        self.audit.record(action, f"error: {message}", self.input_info)
        self.log.error("user change failed", action=action.kind, user=action.name, error=message)

    def _apply(self, action: Action,
               current: Optional[Mapping[str, User]]) -> Tuple[str, Optional[str], Optional[str]]:
        existing = current.get(action.name) if current is not None else None
        resuming = current is not None
        if action.kind == "create":
            assert action.spec is not None
            if existing is not None:
                user = self.cloud.update_user(existing.id, action.spec)
                return DONE, "user already existed: completed", user.id
            return DONE, None, self.cloud.create_user(action.spec).id
        if resuming and existing is None:
            return SKIPPED, "user no longer exists", None
        user_id = existing.id if existing is not None else action.user_id
        assert user_id is not None
        if action.kind == "delete":
            if resuming and self.delete_policy == "no_vms":
                owned = self.vm_count(user_id)
                if owned:
                    return SKIPPED, f"owns {owned} VM(s) now", user_id
            try:
                self.cloud.delete_user(user_id)
            except NotFound:
                return SKIPPED, "user no longer exists", user_id
            return DONE, None, user_id
        if action.spec is not None:
            self.cloud.update_user(user_id, action.spec)
        else:
            self.cloud.set_user_enabled(user_id, action.kind == "enable")
        return DONE, None, user_id


def commit(state: SyncState, meta: Mapping[str, Any], actions: List[Action], phases: Mapping[int, str],
           now: datetime) -> Dict[str, int]:
    """Record in ``state`` what the journaled plan did; returns counts of actions per kind done."""
    disabled: Dict[str, datetime] = {k: parse_time(v) for k, v in (meta.get("disabled_since") or {}).items()}
    adoptable: Set[str] = set(meta.get("adoptable") or [])
    started = parse_time(meta["started"]) if meta.get("started") else now
    done: Dict[str, int] = {}
    quotas: Dict[str, Any] = state.data.setdefault("quotas", {})
    for seq, action in enumerate(actions):
        phase = phases.get(seq)
        if action.kind == "create" and phase != DONE:
            adoptable.add(action.name)  # may exist half-made: take it over next time
            continue
        if phase != DONE:
            continue
        done[action.kind] = done.get(action.kind, 0) + 1
        adoptable.discard(action.name)
        if action.spec is not None and action.spec.quota is not None:
            quotas[action.name] = asdict(action.spec.quota)
        elif action.kind == "delete":
            quotas.pop(action.name, None)
        if action.kind == "disable":
            disabled[action.name] = started
        elif action.kind in ("enable", "delete", "create"):
            disabled.pop(action.name, None)
    state.set_disabled(disabled)
    state.set_adoptable(adoptable)
    if meta.get("input"):
        applied = dict(meta["input"])
        applied["applied_at"] = now.isoformat()
        state.data["last_applied"] = applied
    members = state.vo_members
    members.update({str(k): int(v) for k, v in (meta.get("vo_members") or {}).items()})
    state.data["vo_members"] = members
    return done
