"""Drain the outgoing queue through a transport, deleting a message only once the transport confirmed it.

One run: recover locks a killed run of ours left behind, break stale locks of
other programs (``stale_lock``), then for each element in queue order: write its
name to the in-flight journal (ahead, in fsync'ed batches), lock, read, check
(not empty, ASCII, size), sign, hand to the transport, and delete the elements
the transport confirmed.  Elements that can never be sent are moved to the
reject directory with the reason; everything else that was not confirmed is
unlocked again for the next run.  Nothing is ever deleted without a confirmation.
"""

from __future__ import annotations

import itertools
import os
import queue as queue_module
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Set

from ..atomic import fsync_dir
from ..log import get_logger
from ..queue import MessageQueue
from ..smime import SmimeError
from .signing import Signer
from .transport import MessageRejected, Transport, TransportError


@dataclass
class DrainResult:
    """What one run did; ``remaining`` counts the elements still queued afterwards."""

    sent: int = 0
    bytes: int = 0  # payload bytes of the delivered messages
    failed: int = 0  # handed to the transport but not confirmed (kept for the next run)
    rejected: int = 0  # moved to the reject directory
    busy: int = 0  # locked by another program, left alone
    resent: int = 0  # sent twice because a confirmation was lost (possible duplicates at the receiver)
    remaining: int = 0
    duration: float = 0.0
    error: Optional[str] = None

    def add(self, other: DrainResult) -> None:
        """Accumulate another run (``remaining`` and ``error`` are taken from the later one)."""
        for name in ("sent", "bytes", "failed", "rejected", "busy", "resent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duration += other.duration
        self.remaining = other.remaining
        self.error = other.error

    def summary(self) -> Dict[str, Any]:
        """Counts for the run summary line (the runner adds the run's duration)."""
        result: Dict[str, Any] = {"sent": self.sent, "failed": self.failed, "rejected": self.rejected,
                                  "remaining": self.remaining, "bytes": self.bytes}
        if self.busy:
            result["busy"] = self.busy
        if self.resent:
            result["possible_duplicates"] = self.resent
        if self.duration > 0 and self.sent:
            result["messages_per_s"] = round(self.sent / self.duration, 1)
        return result


#: names written to the in-flight journal (and fsync'ed) at once, ahead of locking them
INTENT_BATCH = 64


class InflightJournal:
    """Names this process is about to lock, so that a run after a crash can unlock them at once.

    dirq only breaks a lock after ``maxlock`` seconds (apel/ssm: 600 s), because it
    cannot tell a dead locker from a slow one.  We hold the daemon lock, so a name in
    our journal that is still locked was locked by a dead run of ours.  Each name is
    written (flushed and fsync'ed) *before* its lock is taken, so no kill leaves a lock
    the journal does not name; a name whose lock is absent at recovery (intended but
    never locked, or released) is passed over.  A name found locked by another program
    is struck out again (a ``-name`` line), so recovery leaves that lock to its holder.
    """

    def __init__(self, path: Path, log: Any) -> None:
        self.path = path
        self.log = log
        self._handle: Optional[Any] = None
        self._broken = False

    def recover(self, queue: MessageQueue) -> int:
        """Unlock what a previous (killed) run left locked; returns how many."""
        try:
            lines = self.path.read_text(encoding="ascii", errors="replace").split()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            self.log.warning("cannot read the in-flight journal", path=str(self.path), error=str(exc))
            return 0
        ours: Dict[str, bool] = {}
        for line in lines:
            if line.startswith("-"):
                ours[line[1:]] = False
            else:
                ours[line] = True
        unlocked = 0
        for name, intended in ours.items():
            if intended and (queue.path / f"{name}.lck").exists():
                try:
                    queue.unlock(name)
                    unlocked += 1
                except OSError:
                    continue
        if unlocked:
            self.log.warning("unlocked messages a previous run left locked (it was killed)", count=unlocked)
        self.clear()
        return unlocked

    def intend(self, names: Sequence[str]) -> None:
        """Record ``names`` as about to be locked; on disk (fsync'ed) when this returns."""
        if names:
            self._write("".join(f"{name}\n" for name in names), durable=True)

    def retract(self, name: str) -> None:
        """``name`` was not locked by us after all (another program holds it)."""
        self._write(f"-{name}\n", durable=False)

    def _write(self, text: str, durable: bool) -> None:
        if self._broken:
            return
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a", encoding="ascii")
                fsync_dir(self.path.parent)  # the journal's own name survives a crash too
            self._handle.write(text)
            self._handle.flush()  # in the kernel: a killed process loses nothing
            if durable:
                os.fsync(self._handle.fileno())  # on disk: nor does a crashed machine
        except OSError as exc:
            self._broken = True
            self.log.warning("cannot write the in-flight journal; a crash would leave locks for stale_lock seconds",
                             path=str(self.path), error=str(exc))

    def clear(self) -> None:
        handle, self._handle = self._handle, None
        try:
            if handle is not None:
                handle.close()
        except OSError:
            pass
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.log.warning("cannot remove the in-flight journal", path=str(self.path), error=str(exc))
        self._broken = False


def sendable(queue: MessageQueue) -> int:
    """Elements nobody holds a lock on (what a drain could send now)."""
    return sum(1 for name in queue.names() if not (queue.path / f"{name}.lck").exists())


def message_problem(data: bytes, max_bytes: int = 0) -> Optional[str]:
    """Why a queued message can never be sent (None if it can): empty, not ASCII, too large."""
    if not data.strip():
        return "empty message"
    if max_bytes and len(data) > max_bytes:
        return f"{len(data)} bytes, larger than ssm.max_message_bytes ({max_bytes})"
    if not data.isascii():
        offset = next(i for i, byte in enumerate(data) if byte > 0x7F)
        return f"not ASCII: byte 0x{data[offset]:02x} at offset {offset} (APEL messages are ASCII)"
    return None


#: confirmed messages waiting for deletion at most; a crash sends these again, so it bounds the duplicates
#: a crash causes (with the transport's window of unconfirmed messages)
MAX_PENDING_REMOVALS = 16


class Remover:
    """Deletes confirmed elements in a background thread.

    Unlinking a 40 kB file costs about as much as signing it (the file system frees
    its blocks); the syscall releases the GIL, so doing it aside keeps the sending
    thread busy.  At most :data:`MAX_PENDING_REMOVALS` wait (:meth:`remove` blocks
    beyond).  :meth:`finish` waits until every deletion is done.
    """

    def __init__(self, queue: MessageQueue, log: Any) -> None:
        self.queue = queue
        self.log = log
        self._pending: queue_module.Queue[Optional[str]] = queue_module.Queue(MAX_PENDING_REMOVALS)
        self._thread = threading.Thread(target=self._run, name="ssm-remover", daemon=True)
        self._thread.start()

    def remove(self, name: str) -> None:
        self._pending.put(name)

    def _run(self) -> None:
        while True:
            name = self._pending.get()
            if name is None:
                return
            try:
                self.queue.remove(name)
            except OSError as exc:
                self.log.error("message delivered but cannot be removed from the queue; it will be sent again",
                               msgid=name, error=str(exc))

    def finish(self) -> None:
        self._pending.put(None)
        self._thread.join()


class Sender:
    """Drains one queue through one transport."""

    def __init__(self, queue: MessageQueue, signer: Signer, transport: Transport, *, journal: InflightJournal,
                 reject_dir: Optional[Path] = None, max_message_bytes: int = 0, stale_lock: float = 600.0,
                 flush_timeout: float = 60.0, max_run_time: float = 0.0, stop: Optional[threading.Event] = None,
                 log: Any = None) -> None:
        self.queue = queue
        self.signer = signer
        self.transport = transport
        self.journal = journal
        self.reject_dir = reject_dir
        self.max_message_bytes = max_message_bytes
        self.stale_lock = stale_lock
        self.flush_timeout = flush_timeout
        self.max_run_time = max_run_time
        self.stop = stop or threading.Event()
        self.log = log or get_logger("ssm")
        self._held: Set[str] = set()
        self._sizes: Dict[str, int] = {}
        self._remover: Remover

    def prepare(self) -> None:
        """Recover our own stale locks and break other programs' stale ones."""
        self.journal.recover(self.queue)
        try:
            self.queue.purge(max_lock=int(self.stale_lock))
        except OSError as exc:
            self.log.warning("queue purge failed", queue=str(self.queue.path), error=str(exc))

    def drain(self) -> DrainResult:
        """Send what is queued now; never raises for transport problems (see ``error``)."""
        started = time.monotonic()
        result = DrainResult()
        self.prepare()
        if sendable(self.queue) == 0:
            result.remaining = self.queue.count()
            result.busy = result.remaining
            result.duration = time.monotonic() - started
            return result
        try:
            self.transport.open()
        except TransportError as exc:
            result.error = str(exc)
            result.remaining = self.queue.count()
            result.duration = time.monotonic() - started
            return result
        self._remover = Remover(self.queue, self.log)
        try:
            self._send_all(result, started)
            if result.error is None:
                timeout = self.flush_timeout if not self.stop.is_set() else min(self.flush_timeout, 10.0)
                self.transport.flush(timeout)
        except TransportError as exc:
            result.error = str(exc)
        except SmimeError as exc:
            result.error = f"signing failed: {exc}"
        finally:
            self.transport.close()  # receipts already on the way are still taken in
            self._collect(result)
            result.failed = len(self._held)
            self._release(self._held)
            self._remover.finish()
            result.resent = self.transport.resent
            self.journal.clear()
            self._tidy()
        result.remaining = self.queue.count()
        result.duration = time.monotonic() - started
        return result

    def _lockable(self, names: Iterator[str], result: DrainResult) -> Iterator[str]:
        """The names nobody holds a lock on now, journalled (a batch at a time) before the caller locks them."""
        while True:
            batch = []
            for name in itertools.islice(names, INTENT_BATCH):
                if (self.queue.path / f"{name}.lck").exists():
                    result.busy += 1  # another program's (ours were recovered in prepare())
                else:
                    batch.append(name)
            if not batch:
                return
            self.journal.intend(batch)
            yield from batch

    def _send_all(self, result: DrainResult, started: float) -> None:
        for name in self._lockable(self.queue.names(), result):
            if self.stop.is_set():
                self.log.info("stop requested: no new messages are sent")
                return
            if self.max_run_time and time.monotonic() - started > self.max_run_time:
                self.log.info("max_run_time reached, the rest waits for the next run")
                return
            if not self.queue.lock(name):  # taken by another program since, or gone
                self.journal.retract(name)
                if (self.queue.path / name).exists():
                    result.busy += 1
                continue
            self._held.add(name)
            data = self._read(name, result)
            if data is None:
                continue
            body = self.signer.sign(data)
            self._sizes[name] = len(data)
            try:
                self.transport.send(name, body)
            except MessageRejected as exc:
                self._reject(exc.msgid, exc.reason, result)
            except TransportError as exc:
                result.error = str(exc)
                return
            finally:
                self._collect(result)

    def _read(self, name: str, result: DrainResult) -> Optional[bytes]:
        try:
            data = self.queue.get(name)
        except FileNotFoundError:
            self._held.discard(name)  # removed under us (by another program): nothing to do
            return None
        except OSError as exc:
            self._reject(name, f"unreadable: {exc.strerror or exc}", result)
            return None
        problem = message_problem(data, self.max_message_bytes)
        if problem is not None:
            self._reject(name, problem, result)
            return None
        return data

    def _collect(self, result: DrainResult) -> None:
        """Delete the confirmed messages and move aside those the transport refused for good."""
        for name in self.transport.confirmed():
            self._remover.remove(name)
            self._held.discard(name)
            result.sent += 1
            result.bytes += self._sizes.pop(name, 0)
        rejected = getattr(self.transport, "rejected", None)
        if callable(rejected):
            for name, reason in rejected():
                self._reject(name, reason, result)

    def _reject(self, name: str, reason: str, result: DrainResult) -> None:
        try:
            target = self.queue.reject(name, reason, self.reject_dir)
        except OSError as exc:
            self.log.error("cannot move an unsendable message aside; it stays in the queue", msgid=name,
                           reason=reason, error=str(exc))
            return
        self._held.discard(name)
        self._sizes.pop(name, None)
        result.rejected += 1
        self.log.error("message moved aside, it can never be sent", msgid=name, reason=reason, to=str(target))

    def _release(self, names: Iterable[str]) -> None:
        for name in list(names):
            try:
                self.queue.unlock(name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.log.warning("cannot unlock message", msgid=name, error=str(exc))
            self._held.discard(name)
            self._sizes.pop(name, None)

    def _tidy(self) -> None:
        try:
            self.queue.purge(max_temp=300, max_lock=0)
        except OSError as exc:
            self.log.warning("queue purge failed", queue=str(self.queue.path), error=str(exc))


def journal_path(state_dir: Path) -> Path:
    return state_dir / "inflight"


__all__ = ["Sender", "DrainResult", "InflightJournal", "message_problem", "journal_path", "MAX_PENDING_REMOVALS",
           "INTENT_BATCH"]
