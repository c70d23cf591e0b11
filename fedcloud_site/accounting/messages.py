"""Messages: records grouped by type, at most N records and B bytes each, written to a sink.

Wire formats (one message = one dirq element):

* cloud: ``APEL-cloud-message: v0.4`` line, then each record's ``Key: value`` lines, each
  record followed by a ``%%`` line (the EGI cloud accounting format; the APEL server splits
  on ``%%`` and ignores empty parts);
* public IP: ``{"Type": "APEL Public IP message", "Version": "v0.2", "UsageRecords": [...]}``
  (``v0.2`` is what the APEL server's IP schema accepts);
* accelerator: ``{"Type": "APEL-accelerator-message", "Version": "0.1", "UsageRecords": [...]}``
  with only the keys the APEL accelerator record knows;
* storage: a StAR ``<sr:StorageUsageRecords>`` document.

Every message is plain ASCII.  The APEL server rejects a whole message when one record
is bad, so messages are kept small (default 100 records, as agreed in GGUS 143436) and
under a byte limit (AMS caps messages at 1 MB after signing and base64 encoding).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, TextIO

from ..errors import FedcloudSiteError
from ..queue import MessageQueue
from .records import STAR_NAMESPACE, AcceleratorRecord, BadRecord, CloudRecord, IPRecord, StorageRecord

CLOUD_HEADER = "APEL-cloud-message: v0.4"
IP_MESSAGE_TYPE = "APEL Public IP message"
IP_MESSAGE_VERSION = "v0.2"
ACCELERATOR_MESSAGE_TYPE = "APEL-accelerator-message"
ACCELERATOR_MESSAGE_VERSION = "0.1"


@dataclass(frozen=True)
class MessageFormat:
    """How records of one type are turned into a message: ``head + sep.join(fragments) + tail``."""

    kind: str
    head: str
    separator: str
    tail: str
    fragment: Callable[[Any], str]

    def assemble(self, fragments: List[str]) -> str:
        return self.head + self.separator.join(fragments) + self.tail


def _json_head(kind: str, version: str) -> str:
    return json.dumps({"Type": kind, "Version": version})[:-1] + ', "UsageRecords": ['


def _cloud_fragment(record: CloudRecord) -> str:
    return record.render() + "%%\n"


def _ip_fragment(record: IPRecord) -> str:
    return json.dumps(record.as_json())


def _accelerator_fragment(record: AcceleratorRecord) -> str:
    return json.dumps(record.as_json())


def _storage_fragment(record: StorageRecord) -> str:
    return record.as_xml()


CLOUD_FORMAT = MessageFormat("cloud", CLOUD_HEADER + "\n", "", "", _cloud_fragment)
IP_FORMAT = MessageFormat("ip", _json_head(IP_MESSAGE_TYPE, IP_MESSAGE_VERSION), ", ", "]}", _ip_fragment)
ACCELERATOR_FORMAT = MessageFormat("accelerator", _json_head(ACCELERATOR_MESSAGE_TYPE, ACCELERATOR_MESSAGE_VERSION),
                                   ", ", "]}", _accelerator_fragment)
STORAGE_FORMAT = MessageFormat("storage", f'<sr:StorageUsageRecords xmlns:sr="{STAR_NAMESPACE}">', "",
                               "</sr:StorageUsageRecords>", _storage_fragment)
FORMATS: Dict[str, MessageFormat] = {f.kind: f for f in (CLOUD_FORMAT, IP_FORMAT, ACCELERATOR_FORMAT, STORAGE_FORMAT)}


class QueueWriteError(FedcloudSiteError):
    """A message could not be written to the queue (disk full, read-only, ...); names the queue."""


class MessageSink:
    """Where finished messages go."""

    def put(self, kind: str, message: str, records: int) -> None:
        raise NotImplementedError


class QueueSink(MessageSink):
    """Durably into a dirq queue (``MessageQueue.add`` fsyncs before returning)."""

    def __init__(self, queue: MessageQueue) -> None:
        self.queue = queue
        self.names: List[str] = []

    def put(self, kind: str, message: str, records: int) -> None:
        try:
            self.names.append(self.queue.add(message))
        except OSError as exc:
            raise QueueWriteError(f"{self.queue.path}: cannot add a message: {exc.strerror or exc}") from exc


class PrintSink(MessageSink):
    """Printed (``--dry-run``): each message after a ``# message N: kind, R records`` line."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.stream = stream
        self.count = 0

    def put(self, kind: str, message: str, records: int) -> None:
        stream = self.stream or sys.stdout
        self.count += 1
        stream.write(f"# message {self.count}: {kind}, {records} records, {len(message)} bytes\n")
        stream.write(message if message.endswith("\n") else message + "\n")
        stream.flush()


class BufferBudget:
    """A cap on the bytes that the partly filled messages of many batchers hold together.

    One VM listing for all projects feeds a batcher per project and record type; each holds
    at most one message, so without a cap memory would grow with the number of projects.
    When the cap is passed, the batcher holding most is sent at once: a message with fewer
    records, never a record lost or split.  What is held never exceeds the cap by more than
    the fragment just added.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self.peak = 0
        self.early_messages = 0  # messages sent before they were full, to stay under the cap
        self._batchers: List[Batcher] = []

    def register(self, batcher: Batcher) -> None:
        self._batchers.append(batcher)

    def charge(self, size: int) -> None:
        """``size`` more bytes are held; sends the fullest messages while the total is over the cap."""
        self.held += size
        self.peak = max(self.peak, self.held)
        while self.held > self.max_bytes:
            fullest = max(self._batchers, key=lambda batcher: batcher.pending_bytes)
            if not fullest.pending:
                break
            self.early_messages += 1
            fullest.flush()

    def release(self, size: int) -> None:
        self.held -= size


class Batcher:
    """Collects records of one type and hands full messages to a sink."""

    def __init__(self, fmt: MessageFormat, sink: MessageSink, max_records: int, max_bytes: int,
                 budget: Optional[BufferBudget] = None) -> None:
        self.fmt = fmt
        self.sink = sink
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.budget = budget
        if budget is not None:
            budget.register(self)
        self._fragments: List[str] = []
        self._size = 0
        self.records = 0
        self.messages = 0
        self._fixed = len(fmt.head) + len(fmt.tail)

    def _size_with(self, fragment: str) -> int:
        sep = len(self.fmt.separator) if self._fragments else 0
        return self._fixed + self._size + sep + len(fragment)

    def add(self, record: Any) -> None:
        """Render ``record`` (BadRecord if it cannot be sent) and queue it for the current message."""
        self.add_fragment(self.fmt.fragment(record))

    def add_fragment(self, fragment: str) -> None:
        """Queue an already rendered record; sends the current message first when it is full."""
        if self._fixed + len(fragment) > self.max_bytes:
            raise BadRecord(f"{self.fmt.kind} record larger than max_message_bytes ({len(fragment)} bytes)")
        if self._fragments and (len(self._fragments) >= self.max_records or self._size_with(fragment) > self.max_bytes):
            self.flush()
        added = len(fragment) + (len(self.fmt.separator) if self._fragments else 0)
        self._fragments.append(fragment)
        self._size += added
        if self.budget is not None:
            self.budget.charge(added)

    def flush(self) -> None:
        """Send the current message, if any."""
        if not self._fragments:
            return
        message = self.fmt.assemble(self._fragments)
        self.sink.put(self.fmt.kind, message, len(self._fragments))
        self.records += len(self._fragments)
        self.messages += 1
        if self.budget is not None:
            self.budget.release(self._size)
        self._fragments = []
        self._size = 0

    @property
    def pending(self) -> int:
        return len(self._fragments)

    @property
    def pending_bytes(self) -> int:
        return self._size
