"""One synchronisation run: input -> safety checks -> plan -> journaled apply -> state.

Order of a run (under ``<state_dir>/sync.lock``):

1. an apply interrupted by a crash or shutdown (``journal.json`` left) is finished first;
2. the input is read (drop directory, ``perun.file`` or Perun RPC) and normalised;
3. the VOs' local groups are looked up, the cloud's users listed and the plan computed;
4. safety checks: an input with no users, older than the last applied one, a VO dropping to zero
   VALID members, or a plan changing more than ``max_change_fraction`` of the managed users is
   refused (:class:`JobRefused`, exit 4) unless ``--force``; dry-run prints the plan and stops;
5. the plan is journaled, applied (audit line per change) and the state committed.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, TextIO, Tuple

from ..cloud.base import CloudBackend, Quota, User, VMState
from ..errors import AlreadyRunning, JobIncomplete, JobRefused
from ..filelock import FileLock
from ..runner import IDLE
from ..timeutil import iso_utc, parse_time, utcnow
from .apply import Applier, commit
from .audit import AuditLog
from .formats import read_snapshot
from .inputs import DropDir, InputChoice
from .model import BadInput, Snapshot
from .plan import Plan, PlanError, Planner, VOTarget, is_managed
from .report import format_plan
from .settings import Settings
from .state import Journal, SyncState

DAEMON = "perun"


@dataclass
class _Input:
    snapshot: Snapshot
    choice: Optional[InputChoice] = None  # None: pulled from Perun RPC
    rejected: List[str] = field(default_factory=list)


class _NotDue(Exception):
    """In the daemon: no new file and the periodic full sync is not due yet."""


@contextlib.contextmanager
def _sync_lock(path: Path) -> Iterator[None]:
    """``flock`` on ``<state_dir>/sync.lock``: one sync at a time, whatever started it."""
    lock = FileLock(path, mode=0o600)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        raise JobIncomplete(f"another Perun sync holds {path}") from exc
    try:
        yield
    finally:
        lock.release()


class _VMCounter:
    """Live VMs per owner, listed once on first need."""

    def __init__(self, cloud: CloudBackend) -> None:
        self.cloud = cloud
        self._by_id: Optional[Dict[str, int]] = None
        self._by_name: Dict[str, int] = {}

    def _load(self) -> Dict[str, int]:
        if self._by_id is None:
            by_id: Dict[str, int] = {}
            for vm in self.cloud.list_vms():
                if vm.state is VMState.DELETED:
                    continue
                by_id[vm.user_id] = by_id.get(vm.user_id, 0) + 1
                if vm.user_name:
                    self._by_name[vm.user_name] = self._by_name.get(vm.user_name, 0) + 1
            self._by_id = by_id
        return self._by_id

    def of_user(self, user: User) -> int:
        by_id = self._load()
        return by_id.get(user.id, 0) + (self._by_name.get(user.name, 0) if user.name != user.id else 0)

    def of_id(self, user_id: str) -> int:
        return self._load().get(user_id, 0)


class Synchroniser:
    """Runs one sync (see module docs)."""

    def __init__(self, config: Any, settings: Settings, cloud: Callable[[], CloudBackend], log: Any,
                 dry_run: bool = False, force: bool = False, stopping: Callable[[], bool] = lambda: False,
                 input_file: Optional[Path] = None, scheduled: bool = False, out: Optional[TextIO] = None) -> None:
        self.config = config
        self.settings = settings
        self._cloud_factory = cloud
        self.log = log
        self.dry_run = dry_run
        self.force = force
        self.stopping = stopping
        self.input_file = input_file
        self.scheduled = scheduled
        self.out = out or sys.stdout
        self.state_dir = settings.state_path(DAEMON)
        self.drop = DropDir(settings.drop_dir, self.state_dir, settings.keep_inputs)
        self._cloud: Optional[CloudBackend] = None

    @property
    def cloud(self) -> CloudBackend:
        if self._cloud is None:
            self._cloud = self._cloud_factory()
        return self._cloud

    def _audit(self) -> AuditLog:
        return AuditLog(self.settings.audit_log or self.state_dir / "audit.jsonl")

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        """One sync; returns the run summary, raises JobRefused / JobIncomplete / errors."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with _sync_lock(self.state_dir / "sync.lock"):
            state = SyncState(self.state_dir)
            try:
                summary = self._run(state)
            except JobRefused as exc:
                self._record(state, "refused", str(exc))
                raise
            except JobIncomplete as exc:
                self._record(state, "incomplete", str(exc), exc.summary)
                raise
            except Exception as exc:
                self._record(state, "failed", f"{type(exc).__name__}: {exc}")
                raise
            if "skipped" not in summary:
                self._record(state, "ok", None, summary)
            return summary

    def _record(self, state: SyncState, result: str, reason: Optional[str],
                summary: Optional[Mapping[str, Any]] = None) -> None:
        if self.dry_run:
            return
        state.data["last_run"] = {"time": iso_utc(utcnow()), "result": result, "reason": reason,
                                  "summary": dict(summary or {})}
        state.data["grace_period"] = float(self.settings.grace_period)
        state.save()

    def _run(self, state: SyncState) -> Dict[str, Any]:
        summary: Dict[str, Any] = {}
        journal = Journal(self.state_dir)
        if journal.exists():
            if self.dry_run:
                _, actions, phases = journal.load()
                left = sum(1 for i in range(len(actions)) if phases.get(i) not in ("done", "skipped"))
                print(f"# an interrupted apply has {left} of {len(actions)} changes left: "
                      f"the next real run finishes it first", file=self.out)
            else:
                summary["resumed"] = self._resume(state, journal)
        try:
            chosen = self._input(state)
        except _NotDue:
            summary["skipped"] = "no new input, full sync not due"
            summary[IDLE] = True  # a poll that found nothing: logged at debug level
            return summary
        if chosen is None:
            summary["input"] = "none"
            return summary
        snapshot = chosen.snapshot
        summary.update(input=snapshot.format, input_users=len(snapshot.users))
        if chosen.rejected:
            summary["rejected_inputs"] = len(chosen.rejected)
        now = utcnow()
        targets, skipped = self._targets()
        users = list(self.cloud.list_users())
        covered = self._covered(snapshot, targets, state, users, skipped)
        planner = Planner(targets=targets, template=self.settings.user_name,
                          managed_property=self.settings.managed_property,
                          protected_users=self.cloud.declaration.protected_users
                          | frozenset(self.settings.protected_users),
                          grace_period=timedelta(seconds=float(self.settings.grace_period)),
                          delete_policy=self.settings.delete_policy)
        vms = _VMCounter(self.cloud)
        try:
            plan = planner.plan(snapshot, covered, users, now, state.disabled_since, state.adoptable, vms.of_user,
                                state.data.get("quotas") or {})
        except PlanError as exc:
            raise JobRefused(f"{snapshot.source}: {exc}") from exc
        refusals = self._checks(snapshot, covered, targets, users, plan, state)
        summary.update(plan.counts, pending_deletions=len(plan.pending), conflicts=len(plan.conflicts),
                       managed=plan.managed, unchanged=plan.unchanged)
        if self.dry_run:
            self.out.write(format_plan(plan, snapshot, covered, refusals, skipped))
            self.out.flush()
            if refusals and not self.force:
                raise JobRefused("; ".join(refusals))
            summary["dry_run"] = True
            return summary
        if refusals:
            if not self.force:
                raise JobRefused("; ".join(refusals))
            self.log.warning("safety checks overridden by --force", reasons=refusals)
        for name in plan.conflicts:
            self.log.warning("local user exists but is not managed by fedcloud-site: left alone", user=name)
        errors, done = self._apply(state, snapshot, covered, plan, now)
        summary["managed"] = plan.managed + done.get("create", 0) - done.get("delete", 0)
        state.data["managed_users"] = summary["managed"]
        state.data["pending_deletions"] = [
            {"name": p.name, "since": iso_utc(p.since), "due": iso_utc(p.due), "blocked": p.blocked}
            for p in plan.pending]
        if chosen.choice is not None and self.settings.drop_dir is not None:
            self.drop.accept(chosen.choice)
        summary["failed"] = len(errors)
        if errors or skipped_errors(skipped):
            problems = errors + [f"VO {vo}: {why}" for vo, why in skipped.items() if why.startswith("local group")]
            raise JobIncomplete("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""), summary)
        return summary

    # -- input ---------------------------------------------------------------------------------------
    def _input(self, state: SyncState) -> Optional[_Input]:
        if self.settings.source == "rpc" and self.input_file is None:
            from .rpc import PerunRPC

            client = PerunRPC(self.settings.rpc)
            try:
                snapshot = client.fetch(self.settings.vos)
            except BadInput as exc:
                raise JobRefused(str(exc)) from exc
            finally:
                client.close()
            return _Input(snapshot)
        if self.input_file is not None:
            return _Input(self._parse(self.input_file), InputChoice(self.input_file))
        if self.settings.file is None and self.settings.drop_dir is None:
            raise JobRefused("perun.file (or perun.drop_dir) is not configured: no input to read")
        rejected: List[str] = []
        waiting = self.drop.waiting()
        for index, path in enumerate(waiting):
            try:
                snapshot = read_snapshot(path)
            except BadInput as exc:
                rejected.append(str(exc))
                if not self.dry_run:
                    target = self.drop.reject(path, str(exc))
                    self.log.error("propagation file rejected", file=str(path), moved_to=str(target), error=str(exc))
                continue
            if self.scheduled and not self._due(state, path):
                raise _NotDue()
            return _Input(snapshot, InputChoice(path, True, waiting[index + 1:]), rejected)
        if rejected:
            raise JobRefused("; ".join(rejected))
        if self.scheduled and not self._due(state, None):
            raise _NotDue()
        candidates = []
        if self.settings.drop_dir is not None:
            candidates.append(self.drop.last_input)
        if self.settings.file is not None:
            candidates.append(self.settings.file)
        for path in candidates:
            if path.exists():
                return _Input(self._parse(path), InputChoice(path))
        if self.settings.file is not None and self.settings.drop_dir is None:
            raise JobRefused(f"{self.settings.file}: propagation file does not exist (perun.file)")
        self.log.info("no propagation file received yet", drop_dir=str(self.settings.drop_dir))
        return None

    def _parse(self, path: Path) -> Snapshot:
        try:
            return read_snapshot(path)
        except BadInput as exc:
            raise JobRefused(str(exc)) from exc

    def _due(self, state: SyncState, waiting: Optional[Path]) -> bool:
        """In the daemon: a full sync when a new file arrived or ``interval`` passed since the last run."""
        last = (state.data.get("last_run") or {}).get("time")
        if not last:
            return True
        last_time = parse_time(last)
        if waiting is not None and datetime.fromtimestamp(waiting.stat().st_mtime, tz=last_time.tzinfo) >= last_time:
            return True
        return utcnow() - last_time >= timedelta(seconds=float(self.settings.interval))

    # -- VOs -----------------------------------------------------------------------------------------
    def _targets(self) -> Tuple[Dict[str, VOTarget], Dict[str, str]]:
        """Configured VOs with their local group; VOs whose group is missing are skipped (named)."""
        groups = list(self.cloud.list_groups())
        by_name = {g.name: g.id for g in groups}
        ids = {g.id for g in groups}
        targets: Dict[str, VOTarget] = {}
        skipped: Dict[str, str] = {}
        for vo, vo_settings in self.settings.vos.items():
            group = self.settings.group_of(self.config, vo)
            group_id = by_name.get(group) or (group if group in ids else None)
            if group_id is None:
                skipped[vo] = f"local group {group!r} does not exist in the cloud (vos.{vo}.group)"
                self.log.error("VO skipped: its local group does not exist", vo=vo, group=group)
                continue
            quota = None
            if vo_settings.quota is not None:
                q = vo_settings.quota
                quota = Quota(instances=q.instances, cores=q.cores, ram_mb=q.ram_mb)
            targets[vo] = VOTarget(vo, group_id, quota)
        return targets, skipped

    def _covered(self, snapshot: Snapshot, targets: Mapping[str, VOTarget], state: SyncState,
                 users: List[User], skipped: Dict[str, str]) -> Set[str]:
        covered = {vo for vo in snapshot.vos if vo in targets}
        for vo in targets:
            if vo in covered:
                continue
            had = max(state.vo_members.get(vo, 0), self._managed_in(vo, targets, users))
            if snapshot.format == "fedcloud_export" and had:
                covered.add(vo)  # legacy files cannot say "VO with no members": absent counts as empty
            else:
                skipped[vo] = "not in the input"
        return covered

    def _managed_in(self, vo: str, targets: Mapping[str, VOTarget], users: List[User]) -> int:
        group_id = targets[vo].group_id
        marker = self.settings.managed_property
        return sum(1 for u in users if u.enabled and group_id in u.groups and is_managed(u.properties, marker))

    # -- safety ---------------------------------------------------------------------------------------
    def _checks(self, snapshot: Snapshot, covered: Set[str], targets: Mapping[str, VOTarget], users: List[User],
                plan: Plan, state: SyncState) -> List[str]:
        reasons: List[str] = []
        if not snapshot.users:
            reasons.append(f"{snapshot.source}: the input lists no users at all")
        last = state.last_generated_at
        if snapshot.generated_at is not None and last is not None and snapshot.generated_at < last:
            reasons.append(f"{snapshot.source}: generated {snapshot.generated_at.isoformat()}, older than the "
                           f"last applied input ({last.isoformat()})")
        counts = _valid_counts(snapshot, covered)
        for vo in sorted(covered):
            had = max(state.vo_members.get(vo, 0), self._managed_in(vo, targets, users))
            if counts.get(vo, 0) == 0 and had > 0:
                reasons.append(f"VO {vo} has no VALID members in the input but had {had}")
        limit = max(self.settings.change_allowance, math.floor(self.settings.max_change_fraction * plan.managed))
        if plan.risky_changes > limit:
            reasons.append(f"the plan changes {plan.risky_changes} of {plan.managed} managed users "
                           f"({plan.count('update')} updates, {plan.count('disable')} disables), more than "
                           f"max_change_fraction {self.settings.max_change_fraction} allows ({limit})")
        return reasons

    # -- applying ---------------------------------------------------------------------------------------
    def _apply(self, state: SyncState, snapshot: Snapshot, covered: Set[str], plan: Plan,
               now: datetime) -> Tuple[List[str], Dict[str, int]]:
        meta: Dict[str, Any] = {
            "started": now.isoformat(),
            "input": {"source": snapshot.source, "format": snapshot.format, "digest": snapshot.digest,
                      "generated_at": snapshot.generated_at.isoformat() if snapshot.generated_at else None},
            "vo_members": _valid_counts(snapshot, covered),
            "disabled_since": {k: v.isoformat() for k, v in plan.disabled_since.items()},
            "adoptable": sorted(state.adoptable),
        }
        journal = Journal(self.state_dir)
        audit = self._audit()
        try:
            if plan.actions:
                journal.begin(plan.actions, meta)
            vms = _VMCounter(self.cloud)
            applier = Applier(self.cloud, journal, audit, meta["input"], self.log, self.stopping, vms.of_id,
                              self.settings.delete_policy)
            result = applier.run(plan.actions)
        finally:
            journal.close()
            audit.close()
        if result.aborted:
            raise JobIncomplete(f"apply stopped: {result.aborted}; the rest is done on the next run",
                                {"failed": len(result.errors)})
        done = commit(state, meta, plan.actions, result.phases, utcnow())
        state.save()
        journal.finish()
        return result.errors, done

    def _resume(self, state: SyncState, journal: Journal) -> int:
        """Finish a journaled plan left by a crash or shutdown; returns the number of actions redone."""
        meta, actions, phases = journal.load()
        left = [i for i in range(len(actions)) if phases.get(i) not in ("done", "skipped")]
        self.log.warning("finishing an interrupted apply", changes_left=len(left), total=len(actions),
                         started=meta.get("started"))
        current = {u.name: u for u in self.cloud.list_users()}
        vms = _VMCounter(self.cloud)
        audit = self._audit()
        try:
            applier = Applier(self.cloud, journal, audit, meta.get("input") or {}, self.log, self.stopping,
                              vms.of_id, self.settings.delete_policy)
            result = applier.run(actions, phases, current)
        finally:
            journal.close()
            audit.close()
        if result.aborted:
            raise JobIncomplete(f"finishing the interrupted apply stopped: {result.aborted}")
        commit(state, meta, actions, result.phases, utcnow())
        state.save()
        journal.finish()
        return len(left)


def skipped_errors(skipped: Mapping[str, str]) -> bool:
    return any(why.startswith("local group") for why in skipped.values())


def _valid_counts(snapshot: Snapshot, covered: Set[str]) -> Dict[str, int]:
    counts = {vo: 0 for vo in covered}
    for user in snapshot.users:
        for vo in {m.vo for m in user.memberships if m.vo in counts}:
            if user.valid_in(vo):
                counts[vo] += 1
    return counts


def iter_pending_inputs(settings: Settings) -> Iterator[Path]:
    yield from DropDir(settings.drop_dir, settings.state_path(DAEMON)).waiting()
