"""``accounting`` section: where records go, what is extracted, from when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from ..cloud.base import Capability
from ..schema import Duration
from ..settings import DaemonSettings
from ..timeutil import parse_time

RecordType = Literal["cloud", "ip", "accelerator", "storage"]

#: record types that travel as JSON messages: the released APEL server (2.5.0) rejects them, so each has
#: a queue and a destination of its own, named by the operator
JSON_RECORD_TYPES = ("ip", "accelerator")
#: what each JSON record type needs on the receiving side
JSON_RECEIVERS = {
    "ip": "a server that loads 'APEL Public IP message' (APEL pull request #226; not in any APEL release)",
    "accelerator": "a server that loads 'APEL-accelerator-message' (APEL's accelerator branch, pull requests "
                   "#264/#459; not in APEL 2.5.0)",
}

#: image properties holding the marketplace (AppDB) identifier, tried in this order
DEFAULT_IMAGE_ID_PROPERTIES = [
    "vmcatcher_event_ad_mpuri",  # atrope / vmcatcher (OpenStack)
    "ad:mpuri",  # image list entry copied verbatim
    "VMCATCHER_EVENT_AD_MPURI",  # OpenNebula (INHERIT_IMAGE_ATTR)
    "CLOUDKEEPER_APPLIANCE_MPURI",  # cloudkeeper-one
    "CLOUDKEEPER_appliance_mpuri",  # cloudkeeper-os
]


@dataclass
class RecordQueue:
    """``accounting.ip`` / ``accounting.accelerator``: where the messages of a JSON record type go.

    Never the cloud queue: a server that rejects them (APEL 2.5.0 rejects both) must not hold up or
    reject cloud records.  ``destination`` is the STOMP queue or AMS topic the ``ssm`` daemon delivers
    them to.
    """

    queue_dir: Optional[Path] = None  # default: <accounting.queue_dir>-<record type>
    destination: Optional[str] = None  # required when the record type is enabled


@dataclass
class Settings(DaemonSettings):
    """What the accounting extractor reads and writes.

    ``queue_dir`` is the dirq QueueSimple directory apel/ssm (or our ``ssm`` daemon) sends from.
    Storage (StAR) records go to a queue of their own (``storage_queue_dir``) because EGI
    receives them on a different destination than cloud records.
    """

    interval: Duration = Duration(6 * 3600)
    queue_dir: Path = Path("/var/spool/apel/outgoing/fedcloud-site")
    storage_queue_dir: Optional[Path] = None  # required when record_types includes "storage"
    # what the released APEL server (2.5.0) loads: cloud records (and StAR storage records on their own queue)
    record_types: List[RecordType] = field(default_factory=lambda: ["cloud"])
    ip: RecordQueue = field(default_factory=RecordQueue)  # public IP records (JSON), when enabled
    accelerator: RecordQueue = field(default_factory=RecordQueue)  # GPU records (JSON), when enabled
    # first extraction of a project starts here (date or ISO time, UTC); default: start of the previous month
    first_run_start: Any = None
    max_records_per_message: int = 100
    max_message_bytes: int = 256 * 1024  # AMS accepts at most 1 MB after base64 (x4/3) and signing
    projects: List[str] = field(default_factory=list)  # ids or names; empty: every project with a VO
    ignore_projects: List[str] = field(default_factory=list)  # ids or names never accounted (admin, service)
    cloud_type: Optional[str] = None  # CloudType; default "fedcloud-site/<version> (<backend>)"
    image_id_properties: List[str] = field(default_factory=lambda: list(DEFAULT_IMAGE_ID_PROPERTIES))
    # wall time of stopped/suspended VMs: false counts only running time where the backend records it
    # (OpenNebula history, static run_periods); true counts the whole time since creation, as Nova's does
    count_suspended_wall: bool = False
    lookup_user_names: bool = True  # ask the backend for user names when VMs do not carry them
    # one VM listing per project, or one for all projects; auto: all where the backend reads the whole pool
    # for a project anyway (OpenNebula), per project where the cloud filters (OpenStack)
    vm_listing: Literal["auto", "per_project", "all_projects"] = "auto"

    def validate(self) -> None:
        super().validate()
        if self.max_records_per_message < 1:
            raise ValueError("max_records_per_message: must be at least 1")
        if self.max_records_per_message > 1000:
            raise ValueError("max_records_per_message: the APEL server accepts at most 1000 records per message")
        if self.max_message_bytes < 4096:
            raise ValueError("max_message_bytes: must be at least 4096")
        if self.max_message_bytes > 700 * 1024:
            raise ValueError("max_message_bytes: must stay under 700 KiB (the 1 MB AMS limit applies after "
                             "signing and base64 encoding)")
        if not self.record_types:
            raise ValueError("record_types: enable at least one of cloud, ip, accelerator, storage")
        if "storage" in self.record_types and self.storage_queue_dir is None:
            raise ValueError("record_types: storage records need storage_queue_dir (EGI receives them on their "
                             "own destination, eu-egi-storage-accounting)")
        if self.storage_queue_dir is not None and self.storage_queue_dir == self.queue_dir:
            raise ValueError("storage_queue_dir: must differ from queue_dir")
        for kind in JSON_RECORD_TYPES:
            queue = getattr(self, kind)
            if queue.destination is not None and not queue.destination.strip():
                raise ValueError(f"{kind}.destination: must not be empty")
            if kind in self.record_types and not queue.destination:
                raise ValueError(f"{kind}.destination: required when record_types includes {kind}: the STOMP "
                                 f"queue or AMS topic of {JSON_RECEIVERS[kind]}; these messages never share the "
                                 f"cloud records' queue and destination")
        seen: Dict[Path, str] = {}
        for kind, path in self.queue_dirs().items():
            if path in seen:
                key = "queue_dir" if kind == "cloud" else ("storage_queue_dir" if kind == "storage"
                                                           else f"{kind}.queue_dir")
                raise ValueError(f"{key}: {path} is already the queue of {seen[path]} records (each record "
                                 f"type needs a queue of its own)")
            seen[path] = kind
        if self.first_run_start is not None:
            self.first_start()

    def needed_capabilities(self) -> Dict[Capability, str]:
        """Usage history; a backend without volumes or floating IPs just yields no storage or IP records."""
        return {Capability.USAGE: ""}

    def queue_dir_of(self, kind: str) -> Optional[Path]:
        """The outgoing queue of a record type (None: storage without ``storage_queue_dir``)."""
        if kind == "cloud":
            return self.queue_dir
        if kind == "storage":
            return self.storage_queue_dir
        queue: RecordQueue = getattr(self, kind)
        return queue.queue_dir or self.queue_dir.with_name(f"{self.queue_dir.name}-{kind}")

    def queue_dirs(self) -> Dict[str, Path]:
        """Record type -> outgoing queue, for the enabled record types (cloud's always)."""
        dirs: Dict[str, Path] = {"cloud": self.queue_dir}
        for kind in self.record_types:
            path = self.queue_dir_of(kind)
            if path is not None:
                dirs[kind] = path
        return dirs

    def first_start(self) -> Optional[datetime]:
        """``first_run_start`` as an aware UTC time (None: start of the previous month)."""
        if self.first_run_start is None:
            return None
        try:
            return parse_time(self.first_run_start)
        except ValueError as exc:
            raise ValueError(f"first_run_start: {exc}") from exc
