"""What the synchroniser remembers between runs, and the journal that makes an apply resumable.

``<state_dir>/perun-state.json`` (written atomically) holds:

* ``last_applied``: digest, source, format and ``generated_at`` of the last input applied, and
  when (inputs older than it are refused);
* ``vo_members``: VALID members per VO in that input (a VO dropping to zero is refused);
* ``disabled``: managed users we disabled, with the time (the grace period runs from it);
* ``adoptable``: users whose creation was started but not confirmed (a half-created user without
  our marker is taken over instead of being reported as someone else's);
* ``quotas``: the limits last set per user, for backends that do not report user quotas;
* ``last_run``: time, result and counts of the last run (for ``fedcloud-site perun status``).

``<state_dir>/journal.json`` is the plan being applied (written before the first change) and
``journal.progress`` one line per action started/finished (appended, fsynced).  If the process
dies mid-apply, the next run finds the journal and finishes the plan, each action checked against
the cloud first so that nothing is done twice, before it looks at new input.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from ..atomic import atomic_write_text, fsync_dir
from ..cloud.base import Quota, UserSpec
from ..errors import FedcloudSiteError
from ..timeutil import iso_utc, parse_time
from .plan import Action

STATE_FILE = "perun-state.json"
JOURNAL_FILE = "journal.json"
PROGRESS_FILE = "journal.progress"
STATE_VERSION = 1


class StateError(FedcloudSiteError):
    """The state file or journal is unreadable; the message names the file."""


class SyncState:
    """The persistent state (see module docs)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self.data: Dict[str, Any] = self._load()

    def _load(self) -> Dict[str, Any]:
        empty: Dict[str, Any] = {"version": STATE_VERSION, "last_applied": None, "vo_members": {},
                                 "disabled": {}, "adoptable": [], "last_run": None}
        if not self.path.exists():
            return empty
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.path}: unreadable state ({exc}); move it aside to start afresh") from exc
        if not isinstance(data, dict):
            raise StateError(f"{self.path}: unreadable state (not an object); move it aside to start afresh")
        for key, value in empty.items():
            data.setdefault(key, value)
        return data

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True) + "\n", mode=0o600)

    # -- typed accessors -------------------------------------------------------------------------------
    @property
    def last_generated_at(self) -> Optional[datetime]:
        applied = self.data.get("last_applied") or {}
        value = applied.get("generated_at")
        return parse_time(value) if value else None

    @property
    def vo_members(self) -> Dict[str, int]:
        return {str(k): int(v) for k, v in (self.data.get("vo_members") or {}).items()}

    @property
    def disabled_since(self) -> Dict[str, datetime]:
        return {name: parse_time(entry["since"]) for name, entry in (self.data.get("disabled") or {}).items()}

    @property
    def adoptable(self) -> Set[str]:
        return set(self.data.get("adoptable") or [])

    def set_disabled(self, since: Mapping[str, datetime]) -> None:
        self.data["disabled"] = {name: {"since": iso_utc(when)} for name, when in sorted(since.items())}

    def set_adoptable(self, names: Set[str]) -> None:
        self.data["adoptable"] = sorted(names)


# -- actions as JSON --------------------------------------------------------------------------------------
def spec_to_json(spec: Optional[UserSpec]) -> Optional[Dict[str, Any]]:
    if spec is None:
        return None
    data = asdict(spec)
    data["groups"] = list(spec.groups)
    data["x509_dns"] = list(spec.x509_dns)
    data["ssh_keys"] = list(spec.ssh_keys)
    data["properties"] = dict(spec.properties)
    return data


def spec_from_json(data: Optional[Mapping[str, Any]]) -> Optional[UserSpec]:
    if data is None:
        return None
    quota = Quota(**data["quota"]) if data.get("quota") else None
    return UserSpec(name=data["name"], groups=tuple(data.get("groups") or ()), email=data.get("email"),
                    display_name=data.get("display_name"), enabled=bool(data.get("enabled", True)),
                    x509_dns=tuple(data.get("x509_dns") or ()), ssh_keys=tuple(data.get("ssh_keys") or ()),
                    properties=dict(data.get("properties") or {}), quota=quota)


def action_to_json(action: Action) -> Dict[str, Any]:
    return {"kind": action.kind, "name": action.name, "user_id": action.user_id, "spec": spec_to_json(action.spec),
            "reason": action.reason, "changes": list(action.changes), "before": dict(action.before),
            "after": dict(action.after)}


def action_from_json(data: Mapping[str, Any]) -> Action:
    return Action(kind=data["kind"], name=data["name"], user_id=data.get("user_id"),
                  spec=spec_from_json(data.get("spec")), reason=data.get("reason", ""),
                  changes=tuple(data.get("changes") or ()), before=dict(data.get("before") or {}),
                  after=dict(data.get("after") or {}))


# -- journal -------------------------------------------------------------------------------------------------
class Journal:
    """The plan being applied and the progress through it (see module docs)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / JOURNAL_FILE
        self.progress_path = directory / PROGRESS_FILE
        self._progress: Any = None

    def exists(self) -> bool:
        return self.path.exists()

    def begin(self, actions: List[Action], meta: Mapping[str, Any]) -> None:
        """Record the plan durably before its first change."""
        if self.progress_path.exists():
            self.progress_path.unlink()
        doc = {"meta": dict(meta), "actions": [action_to_json(a) for a in actions]}
        atomic_write_text(self.path, json.dumps(doc, indent=1) + "\n", mode=0o600)

    def load(self) -> Tuple[Dict[str, Any], List[Action], Dict[int, str]]:
        """The journaled plan's metadata, its actions and the last recorded phase of each action."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            actions = [action_from_json(a) for a in doc["actions"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{self.path}: unreadable journal ({exc}); move it aside to start afresh") from exc
        phases: Dict[int, str] = {}
        if self.progress_path.exists():
            for line in self.progress_path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    phases[int(entry["seq"])] = str(entry["phase"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by the crash: that action counts as started, not finished
        return dict(doc.get("meta") or {}), actions, phases

    def mark(self, seq: int, phase: str, detail: Optional[str] = None) -> None:
        """Append ``seq``'s phase (started/done/failed/skipped) and fsync it."""
        if self._progress is None:
            self._progress = open(self.progress_path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        entry: Dict[str, Any] = {"seq": seq, "phase": phase}
        if detail:
            entry["detail"] = detail
        self._progress.write(json.dumps(entry) + "\n")
        self._progress.flush()
        os.fsync(self._progress.fileno())

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def finish(self) -> None:
        """The plan is fully applied and its results are in the state file: forget it."""
        self.close()
        for path in (self.path, self.progress_path):
            if path.exists():
                path.unlink()
        fsync_dir(self.directory)
