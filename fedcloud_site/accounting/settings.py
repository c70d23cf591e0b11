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

#: image properties holding the marketplace (AppDB) identifier, tried in this order
DEFAULT_IMAGE_ID_PROPERTIES = [
    "vmcatcher_event_ad_mpuri",  # atrope / vmcatcher (OpenStack)
    "ad:mpuri",  # image list entry copied verbatim
    "VMCATCHER_EVENT_AD_MPURI",  # OpenNebula (INHERIT_IMAGE_ATTR)
    "CLOUDKEEPER_APPLIANCE_MPURI",  # cloudkeeper-one
    "CLOUDKEEPER_appliance_mpuri",  # cloudkeeper-os
]


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
    record_types: List[RecordType] = field(default_factory=lambda: ["cloud", "ip", "accelerator"])
    # first extraction of a project starts here (date or ISO time, UTC); default: start of the previous month
    first_run_start: Any = None
    max_records_per_message: int = 100
    max_message_bytes: int = 256 * 1024  # AMS accepts at most 1 MB after base64 (x4/3) and signing
    projects: List[str] = field(default_factory=list)  # ids or names; empty: every project with a VO
    ignore_projects: List[str] = field(default_factory=list)  # ids or names never accounted (admin, service)
    cloud_type: Optional[str] = None  # CloudType; default "fedcloud-site/<version> (<backend>)"
    image_id_properties: List[str] = field(default_factory=lambda: list(DEFAULT_IMAGE_ID_PROPERTIES))
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
        if self.first_run_start is not None:
            self.first_start()

    def needed_capabilities(self) -> Dict[Capability, str]:
        """Usage history; a backend without volumes or floating IPs just yields no storage or IP records."""
        return {Capability.USAGE: ""}

    def first_start(self) -> Optional[datetime]:
        """``first_run_start`` as an aware UTC time (None: start of the previous month)."""
        if self.first_run_start is None:
            return None
        try:
            return parse_time(self.first_run_start)
        except ValueError as exc:
            raise ValueError(f"first_run_start: {exc}") from None
