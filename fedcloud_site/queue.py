"""The outgoing message queue: a dirq ``QueueSimple`` directory, as apel/ssm reads it.

Writers (the accounting extractor) add messages durably, in dirq's layout but
without dirq's writer: the element is written to ``<8 hex dir>/<14 hex>.tmp``,
fsync'ed, hard-linked to its final ``<8 hex dir>/<14 hex file>`` name and the
directory fsync'ed before :meth:`MessageQueue.add` returns, so a crash after
``add`` cannot lose the message.  The queue root is fsync'ed too when the
intermediate directory may be new to it: this add made it, or this writer has
not yet synced the root since that directory appeared (one directory per
minute, so most adds skip that third fsync).

dirq's own ``add`` retries for ever on any error but ENOENT (a full disk, a
read-only file system, a minute directory left root-owned, too many open files
all spin at 100 % CPU) and changes the process umask around each write (not
restored when the write fails; racy with other threads).  Here every refusal
of the file system is a :class:`QueueWriteError` naming the queue, the file
and the errno, and permissions come from explicit modes, never the umask.

Readers (the SSM sender, or apel/ssm's ``ssmsend``) lock, read and remove
elements with dirq, in the same layout.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from dirq.QueueSimple import QueueSimple

from .atomic import fsync_dir
from .errors import FedcloudSiteError

#: attempts at a fresh element name when the one tried exists (two adds in one microsecond)
NAME_ATTEMPTS = 64


class QueueWriteError(FedcloudSiteError, OSError):
    """The file system refused a queue write (full, read-only, no permission, too many open files...).

    An :class:`OSError` too (``errno``, ``strerror``, ``filename``), so callers catching OSError keep working.
    """

    def __init__(self, queue: Path, action: str, target: Union[str, Path], exc: OSError) -> None:
        code = exc.errno or 0
        name = errno.errorcode.get(code, str(code))
        OSError.__init__(self, code, exc.strerror or str(exc), str(target))
        self.queue = queue
        self.message = f"queue {queue}: cannot {action} {target}: {exc.strerror or exc} ({name})"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class QueueStats:
    count: int  # elements, locked ones included
    oldest_age: Optional[float]  # seconds since the oldest element was added
    bytes: int


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class MessageQueue:
    """A dirq QueueSimple directory with durable adds and a reject area."""

    def __init__(self, path: Union[str, Path], umask: int = 0o027) -> None:
        self.path = Path(path)
        self.umask = umask
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._dirq = QueueSimple(str(self.path), umask=umask)
        except OSError as exc:
            raise QueueWriteError(self.path, "create the queue directory", self.path, exc) from exc
        self._rndhex = random.randrange(16)  # dirq's last name digit: tells writers in one microsecond apart
        self._root_synced_for: Optional[str] = None  # the intermediate directory whose entry we made durable

    # -- writing ---------------------------------------------------------------------------
    def add(self, message: Union[str, bytes]) -> str:
        """Add one message and make it durable; returns the element name (``dir/file``).

        Raises :class:`QueueWriteError` when the file system refuses (nothing is left behind then).
        """
        data = message.encode("ascii") if isinstance(message, str) else message
        directory = self._interval_dir()
        created = self._make_interval_dir(directory)
        tmp = self._write_temporary(directory, data)
        try:
            name = self._link(directory, tmp)
        finally:
            _remove_quietly(tmp)  # after the link (or a refusal) the temporary name only wastes an inode
        try:
            fsync_dir(self.path / directory)
            if created or directory != self._root_synced_for:
                # this add or another writer (or a reader's purge and a re-creation) changed the root
                fsync_dir(self.path)
                self._root_synced_for = directory
        except OSError as exc:
            raise QueueWriteError(self.path, "sync", self.path / name, exc) from exc
        return name

    def _make_interval_dir(self, directory: str) -> bool:
        """Create the intermediate directory unless it exists; True when this call created it."""
        path = self.path / directory
        try:
            try:
                os.mkdir(path, 0o700)
            except FileNotFoundError:  # the queue directory itself was removed: make it again
                self.path.mkdir(parents=True, exist_ok=True)
                os.mkdir(path, 0o700)
        except FileExistsError:
            return False
        except OSError as exc:
            raise QueueWriteError(self.path, "create directory", path, exc) from exc
        try:
            os.chmod(path, 0o777 & ~self.umask)  # the mode dirq gives, whatever the process umask is
        except OSError as exc:
            raise QueueWriteError(self.path, "set the mode of", path, exc) from exc
        return True

    def _write_temporary(self, directory: str, data: bytes) -> Path:
        """``data`` in a new, fsync'ed ``<directory>/<name>.tmp``; removed again if anything fails."""
        for _ in range(NAME_ATTEMPTS):
            tmp = self.path / directory / f"{self._element_name()}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise QueueWriteError(self.path, "create", tmp, exc) from exc
            try:
                os.fchmod(fd, 0o666 & ~self.umask)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                _remove_quietly(tmp)
                raise QueueWriteError(self.path, "write", tmp, exc) from exc
            finally:
                os.close(fd)
            return tmp
        raise QueueWriteError(self.path, "create", self.path / directory,
                              FileExistsError(errno.EEXIST, f"{NAME_ATTEMPTS} fresh names all taken"))

    def _link(self, directory: str, tmp: Path) -> str:
        """Publish ``tmp`` under a fresh element name (readers never see a partly written element)."""
        for _ in range(NAME_ATTEMPTS):
            name = f"{directory}/{self._element_name()}"
            try:
                os.link(tmp, self.path / name)
            except FileExistsError:
                continue
            except OSError as exc:
                raise QueueWriteError(self.path, "link", self.path / name, exc) from exc
            return name
        raise QueueWriteError(self.path, "link", tmp,
                              FileExistsError(errno.EEXIST, f"{NAME_ATTEMPTS} fresh names all taken"))

    def _element_name(self) -> str:
        """dirq's element name: seconds (8 hex), microseconds (5 hex), one digit per writer; sorts by time."""
        now = time.time()
        seconds = int(now)
        return f"{seconds:08x}{int((now - seconds) * 1_000_000):05x}{self._rndhex:01x}"

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
