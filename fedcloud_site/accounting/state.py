"""Per-project extraction state: up to which instant a project's records are in the queue.

One small JSON file per project, ``<state_dir>/projects/<project id>.json``, replaced
atomically (temporary file, fsync, rename, directory fsync) and only after every message
of the run's window is durably in the queue.  An unreadable file is an error naming the
file: the project is skipped until an operator fixes or removes it (removing it restarts
the project from ``first_run_start``, which only re-sends records APEL already keeps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional
from urllib.parse import quote

from ..atomic import atomic_write_text
from ..errors import FedcloudSiteError
from ..timeutil import iso_utc, parse_time, utcnow

STATE_VERSION = 1


class StateError(FedcloudSiteError):
    """A state file cannot be read or written; the message names the file."""


@dataclass(frozen=True)
class ProjectState:
    project_id: str
    extracted_to: datetime  # records up to this instant are in the queue
    vo: Optional[str] = None
    updated_at: Optional[datetime] = None


class StateStore:
    """The state files of one daemon's state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / "projects"

    def path(self, project_id: str) -> Path:
        return self.directory / f"{quote(project_id, safe='')}.json"

    def load(self, project_id: str) -> Optional[ProjectState]:
        """The project's state, None if it was never extracted."""
        path = self.path(project_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{path}: cannot read accounting state: {exc.strerror}") from exc
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            if data.get("project") != project_id:
                raise ValueError(f"written for project {data.get('project')!r}")
            extracted_to = parse_time(data["extracted_to"])
            updated = data.get("updated_at")
            return ProjectState(project_id=project_id, extracted_to=extracted_to, vo=data.get("vo"),
                                updated_at=parse_time(updated) if updated else None)
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"missing {exc.args[0]}" if isinstance(exc, KeyError) else str(exc)
            raise StateError(f"{path}: invalid accounting state ({detail}); fix it, or delete it to extract "
                             f"again from accounting.first_run_start") from exc

    def save(self, project_id: str, extracted_to: datetime, vo: Optional[str] = None,
             summary: Optional[Dict[str, Any]] = None) -> None:
        """Record that everything up to ``extracted_to`` is in the queue (atomic, durable)."""
        data: Dict[str, Any] = {"version": STATE_VERSION, "project": project_id, "vo": vo,
                                "extracted_to": iso_utc(extracted_to), "updated_at": iso_utc(utcnow())}
        if summary:
            data["last_run"] = summary
        try:
            atomic_write_text(self.path(project_id), json.dumps(data, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            raise StateError(f"{self.path(project_id)}: cannot write accounting state: {exc.strerror}") from exc
