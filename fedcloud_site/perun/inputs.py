"""Where the pushed input comes from: an explicit file, the drop directory, or the last one applied.

Perun's push (or the site's ``process-*`` hook of the Perun slave) writes each new propagation
file into ``drop_dir`` (write to a dot-file or ``*.tmp``/``*.part`` first and rename: such names
are never read).  Each run takes the newest file waiting there:

* unparsable files are moved to ``<drop_dir>/rejected/`` with a ``<name>.reason`` file;
* once a file is applied it is moved to ``<state_dir>/inputs/`` (with older files it supersedes),
  and a copy is kept as ``<state_dir>/last-input`` for the periodic drift repair;
* a file refused by a safety check stays waiting until it is forced (``perun sync --force``) or a
  newer file supersedes it.

Without a waiting file the run uses ``last-input`` or, before any was applied, ``perun.file``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ..atomic import atomic_write_bytes, atomic_write_text, fsync_dir
from ..timeutil import utcnow

LAST_INPUT = "last-input"
_PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".reason")


@dataclass
class InputChoice:
    """The file a run works on."""

    path: Path
    from_drop_dir: bool = False
    older: List[Path] = field(default_factory=list)  # waiting files it supersedes


class DropDir:
    """The drop directory and the archive of applied inputs (see module docs)."""

    def __init__(self, drop_dir: Optional[Path], state_dir: Path, keep: int = 10) -> None:
        self.drop_dir = drop_dir
        self.state_dir = state_dir
        self.archive = state_dir / "inputs"
        self.keep = keep

    @property
    def last_input(self) -> Path:
        return self.state_dir / LAST_INPUT

    def waiting(self) -> List[Path]:
        """Complete files waiting in the drop directory, newest first."""
        if self.drop_dir is None or not self.drop_dir.is_dir():
            return []
        files = []
        for entry in os.scandir(self.drop_dir):
            if entry.name.startswith(".") or entry.name.endswith(_PARTIAL_SUFFIXES) or not entry.is_file():
                continue
            files.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
        return [path for _, _, path in sorted(files, reverse=True)]

    def reject(self, path: Path, reason: str) -> Path:
        """Move an unusable file to ``rejected/`` with the reason beside it."""
        assert self.drop_dir is not None
        target_dir = self.drop_dir / "rejected"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        os.replace(path, target)
        atomic_write_text(target_dir / f"{path.name}.reason", reason + "\n")
        fsync_dir(self.drop_dir)
        return target

    def accept(self, choice: InputChoice) -> None:
        """Archive the applied file and the ones it supersedes; keep a copy as ``last-input``."""
        atomic_write_bytes(self.last_input, choice.path.read_bytes(), mode=0o600)
        if not choice.from_drop_dir:
            return
        stamp = utcnow().strftime("%Y%m%dT%H%M%S")
        self.archive.mkdir(parents=True, exist_ok=True)
        self._move(choice.path, self.archive / f"{stamp}-applied-{choice.path.name}")
        for older in choice.older:
            if older.exists():
                self._move(older, self.archive / f"{stamp}-superseded-{older.name}")
        assert self.drop_dir is not None
        fsync_dir(self.drop_dir)
        self._prune()

    @staticmethod
    def _move(source: Path, target: Path) -> None:
        try:
            os.replace(source, target)
        except OSError:  # another file system
            shutil.copy2(source, target)
            source.unlink()

    def _prune(self) -> None:
        entries = sorted(self.archive.iterdir(), key=lambda p: p.name, reverse=True)
        for old in entries[self.keep:]:
            old.unlink()
