"""The audit trail: one JSON line per change applied (or attempted) to a cloud user.

Each line: ``time``, ``actor`` (program, local account and host), ``source`` and ``input`` (the Perun
input that asked for the change: file or RPC URL, and its sha256), ``action``, ``user``,
``user_id``, ``reason``, ``changes``, ``before``, ``after`` and ``result`` (``ok`` or the error).
Lines are appended and fsynced one by one and the file is never rewritten; it is opened anew by
every run, so logrotate's plain ``create`` mode rotates it (no ``copytruncate`` needed).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any, Mapping, Optional

from ..timeutil import iso_utc, utcnow
from .plan import Action


def actor() -> str:
    """``fedcloud-site-perun (<local user>@<host>, pid N)``."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    return f"fedcloud-site-perun ({who}@{socket.gethostname()}, pid {os.getpid()})"


class AuditLog:
    """Append-only JSON lines (see module docs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.actor = actor()
        self._handle: Any = None

    def record(self, action: Action, result: str, input_info: Mapping[str, Any],
               user_id: Optional[str] = None) -> None:
        """Append one line for ``action`` with its ``result`` and fsync it."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._handle = os.fdopen(fd, "a", encoding="utf-8")
        line = {
            "time": iso_utc(utcnow()), "actor": self.actor, "source": input_info.get("source"),
            "input": input_info.get("digest"), "action": action.kind, "user": action.name,
            "user_id": user_id or action.user_id, "reason": action.reason, "changes": list(action.changes),
            "before": dict(action.before), "after": dict(action.after), "result": result,
        }
        self._handle.write(json.dumps(line, sort_keys=False, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
