"""The outgoing message queue: a dirq ``QueueSimple`` directory, as apel/ssm reads it.

Writers (the accounting extractor) add messages durably: the element is written
by dirq (``.tmp`` then hard link to the final ``<8 hex dir>/<14 hex file>``
name), then the file and its directory are fsync'ed before :meth:`add` returns,
so a crash after ``add`` cannot lose the message.  The queue root is fsync'ed
too when the intermediate directory may be new to it: dirq made it during this
add, or this writer has not yet synced the root since that directory appeared
(one directory per minute, so most adds skip that third fsync).  Readers (the
SSM sender, or apel/ssm's ``ssmsend``) lock, read and remove elements with the
same layout.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from dirq.QueueSimple import QueueSimple

from .atomic import fsync_dir, fsync_path


@dataclass(frozen=True)
class QueueStats:
    count: int  # elements, locked ones included
    oldest_age: Optional[float]  # seconds since the oldest element was added
    bytes: int


class MessageQueue:
    """A dirq QueueSimple directory with durable adds and a reject area."""

    def __init__(self, path: Union[str, Path], umask: int = 0o027) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._dirq = QueueSimple(str(self.path), umask=umask)
        self._root_synced_for: Optional[str] = None  # the intermediate directory whose entry we made durable

    # -- writing ---------------------------------------------------------------------------
    def add(self, message: Union[str, bytes]) -> str:
        """Add one message and make it durable; returns the element name (``dir/file``)."""
        data = message.encode("ascii") if isinstance(message, str) else message
        current = self._interval_dir()
        existed = (self.path / current).is_dir()
        name = str(self._dirq.add(data))
        directory = name.split("/", 1)[0]
        element = self.path / name
        fsync_path(element)
        fsync_dir(element.parent)
        if not existed or directory != current or directory != self._root_synced_for:
            # dirq may have created the directory (or another writer did, without syncing the root)
            fsync_dir(self.path)
            self._root_synced_for = directory
        return name

    def _interval_dir(self) -> str:
        """The intermediate directory dirq adds into now (``%08x`` of the time, rounded to its granularity)."""
        now = int(time.time())
        granularity = int(getattr(self._dirq, "granularity", 60) or 1)
        return "%08x" % (now - now % granularity if granularity > 1 else now)

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> Iterator[str]:
        """Element names in insertion order (locked elements included)."""
        name = self._dirq.first()
        while name:
            yield str(name)
            name = self._dirq.next()

    def lock(self, name: str) -> bool:
        """Lock an element for processing; False if someone else holds it or it is gone."""
        return bool(self._dirq.lock(name))

    def unlock(self, name: str) -> None:
        self._dirq.unlock(name)

    def get(self, name: str) -> bytes:
        """The content of a locked element."""
        data = self._dirq.get(name)
        return data if isinstance(data, bytes) else str(data).encode()

    def remove(self, name: str) -> None:
        """Delete a locked element (after the transport confirmed it)."""
        self._dirq.remove(name)

    def reject(self, name: str, reason: str, reject_dir: Optional[Path] = None) -> Path:
        """Move a locked element aside (``<queue>.reject/``) with a ``.reason`` file; never delete it."""
        target = reject_dir_of(self.path, reject_dir) / name.replace("/", "-")
        target.parent.mkdir(parents=True, exist_ok=True)
        source = self.path / name
        lock = self.path / f"{name}.lck"
        shutil.copy2(str(lock if lock.exists() else source), str(target))
        (target.parent / f"{target.name}.reason").write_text(reason + "\n", encoding="utf-8")
        fsync_dir(target.parent)
        self._dirq.remove(name)
        return target

    def purge(self, max_temp: int = 300, max_lock: int = 600) -> None:
        """Remove stale ``.tmp`` files, unlock elements locked longer than ``max_lock`` s, drop empty dirs."""
        self._dirq.purge(maxtemp=max_temp, maxlock=max_lock)

    def stats(self) -> QueueStats:
        """Depth, age of the oldest element and total size."""
        count = 0
        total = 0
        oldest: Optional[float] = None
        for name in self.names():
            count += 1
            try:
                st = (self.path / name).stat()
            except FileNotFoundError:
                continue
            total += st.st_size
            added = int(name.split("/")[1][:8], 16)
            oldest = added if oldest is None else min(oldest, added)
        age = None if oldest is None else max(0.0, time.time() - oldest)
        return QueueStats(count=count, oldest_age=age, bytes=total)

    def count(self) -> int:
        return int(self._dirq.count())


def reject_dir_of(queue_dir: Path, reject_dir: Optional[Path] = None) -> Path:
    """Where a queue's rejected messages go: ``reject_dir`` if configured, else ``<queue_dir>.reject`` beside it."""
    return reject_dir or queue_dir.with_name(queue_dir.name + ".reject")


def count_rejected(reject_dir: Path) -> int:
    """The messages in a reject directory (their ``.reason`` files not counted); 0 if it does not exist."""
    if not reject_dir.is_dir():
        return 0
    return sum(1 for p in reject_dir.rglob("*") if p.is_file() and not p.name.endswith(".reason"))
