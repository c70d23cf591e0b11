"""``ssm`` section: which queue to drain, how to sign, and where to deliver (STOMP brokers or ARGO AMS).

Example (STOMP, brokers discovered from the top BDII)::

    ssm:
      transport: stomp
      destination: /queue/global.accounting.cloud.central
      bdii: ldap://lcg-bdii.cern.ch:2170
      network: PROD
      certificate: /etc/grid-security/hostcert.pem
      key: /etc/grid-security/hostkey.pem
      capath: /etc/grid-security/certificates

Example (AMS)::

    ssm:
      transport: ams
      destination: eu-egi-cloud-accounting        # the AMS topic
      ams: {host: msg.argo.grnet.gr, project: accounting}

Queues: by default the daemon drains ``queue_dir`` (default ``accounting.queue_dir``)
to ``destination`` and, when the accounting section has a ``storage_queue_dir``,
that queue to ``storage_destination`` (EGI's storage accounting queue/topic), and the
queue of each JSON record type the accounting section enables (``accounting.ip``,
``accounting.accelerator``) to the destination named there.  Each queue is drained on
its own: a destination that refuses messages never holds up the others.
``queues`` replaces both with an explicit list::

    ssm:
      queues:
        - {name: cloud, queue_dir: /var/spool/apel/outgoing/fedcloud-site,
           destination: /queue/global.accounting.cloud.central}
        - {name: caso, queue_dir: /var/spool/apel/outgoing/caso,
           destination: /queue/global.accounting.cloud.central}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

from ..accounting.settings import JSON_RECORD_TYPES
from ..queue import reject_dir_of
from ..schema import Duration, Secret
from ..settings import DaemonSettings

DEFAULT_CERTIFICATE = Path("/etc/grid-security/hostcert.pem")
DEFAULT_KEY = Path("/etc/grid-security/hostkey.pem")
DEFAULT_CAPATH = Path("/etc/grid-security/certificates")
#: where EGI receives cloud accounting records (apel/ssm's documented values)
DEFAULT_DESTINATIONS = {"stomp": "/queue/global.accounting.cloud.central", "ams": "eu-egi-cloud-accounting"}
#: where EGI receives storage (StAR) accounting records
DEFAULT_STORAGE_DESTINATIONS = {"stomp": "/queue/global.accounting.storage.central",
                                "ams": "eu-egi-storage-accounting"}
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_AMS_TOPIC = re.compile(r"[A-Za-z0-9_.-]+")


def parse_broker(text: str) -> Tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``stomp+ssl://host:port`` -> (host, port)."""
    value = text.strip()
    if "://" in value:
        value = value.split("://", 1)[1].rstrip("/")
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = value.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"broker {text!r}: expected host:port")
    return host, int(port_text)


@dataclass
class AmsSettings:
    """``ssm.ams``: the ARGO Messaging Service."""

    host: str = "msg.argo.grnet.gr"
    port: int = 443
    project: str = "accounting"
    token: Optional[Secret] = None  # without it the host certificate is exchanged for a token
    auth_url: Optional[str] = None  # default https://<host>:8443/v1/service-types/ams/hosts/<host>:authx509
    max_request_bytes: int = 1_000_000  # the service's limit, base64 payload included
    batch_size: int = 100  # messages per publish request (fewer when they would exceed max_request_bytes)
    timeout: Duration = Duration(30)
    retries: int = 2  # per request, on connection errors and 5xx, with backoff


@dataclass
class QueueSettings:
    """One entry of ``ssm.queues``: a dirq outgoing queue and the destination (STOMP queue / AMS topic) of its
    messages."""

    queue_dir: Path
    destination: str
    name: Optional[str] = None  # label in summaries, ``ssm status`` and state files; default: the directory name
    reject_dir: Optional[Path] = None  # default <queue_dir>.reject

    def validate(self) -> None:
        if not self.destination.strip():
            raise ValueError("destination: must not be empty")
        if self.name is not None and not _QUEUE_NAME.fullmatch(self.name):
            raise ValueError(f"name: {self.name!r}: use letters, digits, _ . -")

    @property
    def label(self) -> str:
        return self.name or self.queue_dir.name

    @property
    def reject_path(self) -> Path:
        return reject_dir_of(self.queue_dir, self.reject_dir)


@dataclass
class Settings(DaemonSettings):
    """The SSM sender."""

    interval: Duration = Duration(300)
    queue_dir: Optional[Path] = None  # defaults to accounting.queue_dir
    reject_dir: Optional[Path] = None  # default <queue_dir>.reject
    transport: Literal["stomp", "ams"] = "stomp"
    destination: Optional[str] = None  # STOMP queue or AMS topic; default: the EGI cloud accounting one
    storage_destination: Optional[str] = None  # of accounting.storage_queue_dir; default: EGI storage accounting
    queues: List[QueueSettings] = field(default_factory=list)  # explicit queues; replace the four keys above
    # signing and TLS
    certificate: Path = DEFAULT_CERTIFICATE
    key: Path = DEFAULT_KEY
    capath: Path = DEFAULT_CAPATH
    server_cert: Optional[Path] = None  # encrypt every message for this certificate
    min_cert_lifetime: Duration = Duration(86400)  # refuse to start when the certificate expires sooner
    # STOMP
    brokers: List[str] = field(default_factory=list)  # host:port; empty: discover from the BDII
    use_ssl: bool = True
    stomp_version: Literal["1.1", "1.2"] = "1.2"
    bdii: str = "ldap://lcg-bdii.cern.ch:2170"
    network: str = "PROD"
    bdii_timeout: Duration = Duration(30)
    persistent: bool = True  # ask the broker to store each message before it confirms (``persistent:true``)
    window: int = 100  # messages sent but not yet confirmed by a receipt (per connection)
    connections: int = 1  # parallel connections (to the same or the next brokers); messages then interleave
    receipt_timeout: Duration = Duration(60)
    connect_timeout: Duration = Duration(20)
    heartbeat: Duration = Duration(30)  # STOMP heart-beat both ways; 0 disables
    reconnects: int = 3  # reconnections (over all brokers) within one run before giving up
    # AMS
    ams: AmsSettings = field(default_factory=AmsSettings)
    # queue handling
    max_message_bytes: int = 0  # 0: no limit of our own (AMS enforces its service limit)
    stale_lock: Duration = Duration(600)  # a lock older than this (left by another program) is broken
    watch: bool = True  # drain as soon as new messages appear (short poll of the queue)
    watch_interval: Duration = Duration(10)
    max_run_time: Duration = Duration(0)  # 0: until the queue is empty

    def validate(self) -> None:
        super().validate()
        for index, broker in enumerate(self.brokers):
            try:
                parse_broker(broker)
            except ValueError as exc:
                raise ValueError(f"brokers[{index}]: {exc}") from exc
        for key in ("destination", "storage_destination"):
            value = getattr(self, key)
            if value is not None and not value.strip():
                raise ValueError(f"{key}: must not be empty")
            if self.transport == "ams" and value and not _AMS_TOPIC.fullmatch(value):
                raise ValueError(f"{key}: {value!r} is not an AMS topic name (letters, digits, _ . -)")
        if self.queues:
            given = [key for key in ("queue_dir", "reject_dir", "destination", "storage_destination")
                     if getattr(self, key) is not None]
            if given:
                raise ValueError(f"queues: give either queues or {', '.join(given)} (each queue names its "
                                 "queue_dir and destination)")
            self._check_queues(self.queues, "queues")
        if self.window < 1:
            raise ValueError("window: must be at least 1")
        if not 1 <= self.connections <= 16:
            raise ValueError("connections: must be between 1 and 16")
        if self.transport == "stomp" and not self.brokers and not self.bdii:
            raise ValueError("brokers: give brokers or a bdii to discover them from")
        if self.ams.batch_size < 1:
            raise ValueError("ams.batch_size: must be at least 1")

    def _check_queues(self, queues: List[QueueSettings], key: str) -> None:
        labels: Dict[str, int] = {}
        directories: Dict[Path, int] = {}
        for index, queue in enumerate(queues):
            if queue.label in labels:
                raise ValueError(f"{key}[{index}]: name {queue.label!r} already used by {key}[{labels[queue.label]}]"
                                 " (give each queue a name of its own)")
            if queue.queue_dir in directories:
                raise ValueError(f"{key}[{index}]: queue_dir {queue.queue_dir} already drained by "
                                 f"{key}[{directories[queue.queue_dir]}]")
            if not _QUEUE_NAME.fullmatch(queue.label):
                raise ValueError(f"{key}[{index}]: name {queue.label!r}: use letters, digits, _ . - (give a name)")
            if self.transport == "ams" and not _AMS_TOPIC.fullmatch(queue.destination):
                raise ValueError(f"{key}[{index}].destination: {queue.destination!r} is not an AMS topic name "
                                 "(letters, digits, _ . -)")
            labels[queue.label] = index
            directories[queue.queue_dir] = index

    def finish(self, config: Any) -> None:
        """Fill defaults that depend on other sections: the queues to drain and their destinations.

        Afterwards ``queues`` lists every queue and ``queue_dir``/``destination``/``reject_dir``
        describe the first one.
        """
        if not self.queues:
            self.queues = self._derived_queues(config)
        first = self.queues[0]
        self.queue_dir, self.destination, self.reject_dir = first.queue_dir, first.destination, first.reject_dir

    def _derived_queues(self, config: Any) -> List[QueueSettings]:
        accounting = config.daemons.get("accounting")
        queue_dir = self.queue_dir or (accounting.queue_dir if accounting is not None else None)
        if queue_dir is None:
            raise ValueError("queue_dir: required (no accounting section to take it from)")
        destination = self.destination or DEFAULT_DESTINATIONS[self.transport]
        queues = [QueueSettings(queue_dir=queue_dir, destination=destination, name="cloud",
                                reject_dir=self.reject_dir)]
        storage_dir = getattr(accounting, "storage_queue_dir", None)
        if storage_dir is not None and storage_dir != queue_dir:
            destination = self.storage_destination or DEFAULT_STORAGE_DESTINATIONS[self.transport]
            queues.append(QueueSettings(queue_dir=storage_dir, destination=destination, name="storage"))
        for kind in JSON_RECORD_TYPES:  # each enabled JSON record type: its own queue and destination
            if accounting is not None and kind in accounting.record_types:
                queues.append(QueueSettings(queue_dir=accounting.queue_dir_of(kind),
                                            destination=getattr(accounting, kind).destination, name=kind))
        self._check_queues(queues, "queues")
        return queues

    def broker_addresses(self) -> List[Tuple[str, int]]:
        """The configured brokers as (host, port)."""
        return [parse_broker(broker) for broker in self.brokers]

    @property
    def reject_path(self) -> Path:
        """The reject directory of the first queue."""
        assert self.queue_dir is not None
        return reject_dir_of(self.queue_dir, self.reject_dir)
