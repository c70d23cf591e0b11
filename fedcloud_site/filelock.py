"""An exclusive, non-blocking ``flock`` on a lock file: one holder at a time, freed when its process ends."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Optional

from .errors import AlreadyRunning, LockUnavailable


class FileLock:
    """``flock(LOCK_EX | LOCK_NB)`` on ``path`` (created if missing); the holder's pid is written into it.

    :meth:`acquire` raises :class:`AlreadyRunning` naming the holding process when another process (or
    another open of the file) holds the lock, and :class:`LockUnavailable` when the file cannot be created.
    The kernel frees the lock when the holding process ends, however it ends.
    """

    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self.mode = mode
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, self.mode)
        except OSError as exc:
            raise LockUnavailable(f"cannot create lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(f"another instance is running: {self.path} is locked by process {holder}") \
                from exc
        try:  # the pid is informative only: a full disk must not stop the holder here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
