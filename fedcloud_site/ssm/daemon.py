"""The SSM daemon: one job, ``send``, that drains the outgoing queues, each to its own destination.

Under ``run`` the job drains every queue (``ssm.queues``: by default the cloud
queue and, when the accounting extractor writes one, the storage queue), then
keeps watching them (a cheap poll every ``watch_interval``) and drains a queue
again as soon as new messages appear in it, until the next scheduled run is
due; it then logs one summary per queue and returns the totals.  Under
``once`` it drains once and fails (exit status 1) when anything is left
unsent.  A queue that fails does not keep the others from being sent.
Credentials are checked before anything is sent.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..atomic import atomic_write_text
from ..errors import JobIncomplete
from ..queue import MessageQueue
from ..runner import Job, JobContext
from ..timeutil import iso_utc, utcnow
from .brokers import Broker, DiscoveryError, resolve_brokers
from .pool import PooledTransport
from .sender import DrainResult, InflightJournal, Sender, journal_path, sendable
from .settings import QueueSettings, Settings
from .signing import CredentialError, Signer, ca_bundle, load_signer
from .stomp_transport import StompTransport, TlsFiles
from .transport import Transport, TransportError

DAEMON = "ssm"


def jobs(config: Any) -> List[Job]:
    """The daemon's jobs."""
    settings = config.section(Settings)
    return [Job(name="send", func=send_job, interval=float(settings.interval), cron=settings.cron,
                jitter=float(settings.jitter))]


def state_dir(settings: Any) -> Path:
    return Path(settings.state_path(DAEMON))


def open_queue(queue: QueueSettings) -> MessageQueue:
    try:
        return MessageQueue(queue.queue_dir)
    except OSError as exc:
        raise TransportError(f"{queue.queue_dir}: cannot open the outgoing queue: {exc.strerror or exc}") from exc


class TransportFactory:
    """Builds one transport per queue; the broker list and the CA bundle are resolved once, on first use."""

    def __init__(self, settings: Any, stop: threading.Event, log: Any) -> None:
        self.settings = settings
        self.stop = stop
        self.log = log
        self._brokers: Optional[List[Broker]] = None
        self._tls: Optional[TlsFiles] = None
        self._error: Optional[str] = None

    def _prepare_stomp(self) -> None:
        settings = self.settings
        if self._brokers is not None:
            return
        if self._error is not None:  # the BDII failed for an earlier queue of this pass: do not wait again
            raise TransportError(self._error)
        try:
            brokers = resolve_brokers(settings, state_dir(settings), self.log)
        except DiscoveryError as exc:
            self._error = str(exc)
            raise TransportError(str(exc)) from exc
        if settings.use_ssl:
            bundle = state_dir(settings) / "broker-ca.pem"
            atomic_write_text(bundle, ca_bundle(settings.capath).decode("ascii"))
            self._tls = TlsFiles(cert_file=settings.certificate, key_file=settings.key, ca_file=bundle,
                                 capath=settings.capath)
        self._brokers = brokers

    def build(self, destination: str) -> Transport:
        """The configured transport for ``destination`` (not yet connected)."""
        settings = self.settings
        if settings.transport == "ams":
            from .ams_transport import make_ams_transport

            return make_ams_transport(settings, destination, self.stop, self.log)
        self._prepare_stomp()
        brokers = self._brokers or []
        members: List[Transport] = []
        for index in range(settings.connections):
            # each connection starts at another broker of the list (spreads the load, failover still in order)
            rotated = brokers[index % len(brokers):] + brokers[:index % len(brokers)]
            members.append(StompTransport(rotated, destination, tls=self._tls, window=settings.window,
                                          receipt_timeout=float(settings.receipt_timeout),
                                          connect_timeout=float(settings.connect_timeout),
                                          heartbeat=float(settings.heartbeat), persistent=settings.persistent,
                                          reconnects=settings.reconnects, version=settings.stomp_version,
                                          stop=self.stop, log=self.log))
        return members[0] if len(members) == 1 else PooledTransport(members, self.log)


def queue_journal(settings: Any, queue: QueueSettings) -> Path:
    """The in-flight journal of one queue (see :class:`InflightJournal`)."""
    return journal_path(state_dir(settings)).with_name(f"inflight-{queue.label}")


def drain_once(settings: Any, signer: Signer, stop: threading.Event, log: Any,
               queue: Optional[QueueSettings] = None, factory: Optional[TransportFactory] = None) -> DrainResult:
    """One drain of one queue (default: the first) with a fresh transport."""
    queue = queue or settings.queues[0]
    if not queue.queue_dir.is_dir():
        return DrainResult()  # nothing was ever queued there (e.g. no storage records yet)
    log = log.bind(queue=queue.label)
    messages = open_queue(queue)
    journal = InflightJournal(queue_journal(settings, queue), log)
    if queue is settings.queues[0]:
        # the journal of versions that drained one queue only
        InflightJournal(journal_path(state_dir(settings)), log).recover(messages)
    try:
        transport = (factory or TransportFactory(settings, stop, log)).build(queue.destination)
    except (TransportError, CredentialError) as exc:
        result = DrainResult(error=str(exc))
        sender = Sender(messages, signer, _NoTransport(), journal=journal, stale_lock=float(settings.stale_lock),
                        log=log)
        sender.prepare()
        result.remaining = messages.count()
        return result
    sender = Sender(messages, signer, transport, journal=journal, reject_dir=queue.reject_path,
                    max_message_bytes=settings.max_message_bytes, stale_lock=float(settings.stale_lock),
                    flush_timeout=float(settings.receipt_timeout), max_run_time=float(settings.max_run_time),
                    stop=stop, log=log)
    return sender.drain()


def drain_all(settings: Any, signer: Signer, stop: threading.Event, log: Any,
              only: Optional[List[QueueSettings]] = None) -> Dict[str, DrainResult]:
    """Drain each queue (or those of ``only``) in turn; one failing does not stop the others."""
    factory = TransportFactory(settings, stop, log)
    results: Dict[str, DrainResult] = {}
    for queue in only if only is not None else settings.queues:
        if stop.is_set():
            break
        try:
            results[queue.label] = drain_once(settings, signer, stop, log, queue, factory)
        except TransportError as exc:  # the queue directory cannot be opened
            results[queue.label] = DrainResult(error=str(exc))
    return results


class _NoTransport:
    """Stands in when no transport could be built: only queue housekeeping happens."""

    name = "none"
    resent = 0

    def open(self) -> None:
        raise TransportError("no transport")

    def send(self, msgid: str, body: bytes) -> None:
        raise TransportError("no transport")

    def confirmed(self) -> List[str]:
        return []

    def flush(self, timeout: float) -> None:
        return None

    def unconfirmed(self) -> List[str]:
        return []

    def close(self) -> None:
        return None


def send_job(ctx: JobContext) -> Dict[str, Any]:
    """Drain the queues (and under ``run``, keep draining new messages until the next run is due)."""
    settings = ctx.config.section(Settings)
    log = ctx.log
    try:
        signer = load_signer(settings.certificate, settings.key, settings.capath, settings.server_cert,
                             float(settings.min_cert_lifetime))
    except CredentialError as exc:
        raise CredentialError(f"ssm cannot sign: {exc}") from exc
    for warning in signer.warnings or []:
        log.warning("host certificate problem", problem=warning)
    if ctx.dry_run:
        count = size = 0
        for queue in settings.queues:
            if queue.queue_dir.is_dir():
                stats = open_queue(queue).stats()
                count, size = count + stats.count, size + stats.bytes
        return {"would_send": count, "bytes": size, "signer": signer.dn}
    watching = ctx.options.get("action") == "run" and settings.watch
    results = {queue.label: DrainResult() for queue in settings.queues}
    with GracefulSigterm(ctx.stop):
        _accumulate(results, drain_all(settings, signer, ctx.stop, log))
        if watching:
            _watch(ctx, signer, results)
    for queue in settings.queues:
        result = results[queue.label]
        log.info("queue summary", queue=queue.label, destination=queue.destination, error=result.error,
                 **result.summary())
    write_last_run(settings, results)
    total = combined(results)
    summary = total.summary()
    if total.error is not None or total.remaining:
        reason = total.error or f"{total.remaining} messages left in the queue"
        raise JobIncomplete(reason, summary)
    return summary


def _accumulate(results: Dict[str, DrainResult], new: Dict[str, DrainResult]) -> None:
    for label, result in new.items():
        results[label].add(result)


def combined(results: Dict[str, DrainResult]) -> DrainResult:
    """The totals of several queues; ``error`` names the queue when there are several."""
    total = DrainResult()
    errors = []
    for label, result in results.items():
        for name in ("sent", "bytes", "failed", "rejected", "busy", "resent", "remaining"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
        total.duration += result.duration
        if result.error is not None:
            errors.append(result.error if len(results) == 1 else f"{label}: {result.error}")
    total.error = "; ".join(errors) or None
    return total


def _watch(ctx: JobContext, signer: Signer, results: Dict[str, DrainResult]) -> None:
    """Drain new messages as they appear until the next scheduled run is due (back off per failing queue)."""
    settings = ctx.config.section(Settings)
    until = time.monotonic() + max(0.0, float(settings.interval) - float(settings.watch_interval))
    poll = max(0.2, float(settings.watch_interval))
    failures = {queue.label: 0 for queue in settings.queues}
    next_try = {queue.label: 0.0 for queue in settings.queues}
    while not ctx.stop.wait(poll) and time.monotonic() < until:
        due = []
        for queue in settings.queues:
            if time.monotonic() < next_try[queue.label] or not queue.queue_dir.is_dir():
                continue
            try:
                if sendable(open_queue(queue)):
                    due.append(queue)
            except (OSError, TransportError):
                continue
        if not due:
            continue
        for label, result in drain_all(settings, signer, ctx.stop, ctx.log, only=due).items():
            if result.sent or result.rejected or result.error:
                ctx.log.info("drained new messages", queue=label, error=result.error, **result.summary())
            results[label].add(result)
            if result.error is not None or not (result.sent or result.rejected):
                failures[label] += 1  # failed, or nothing could be done: do not retry at every poll
                next_try[label] = time.monotonic() + min(float(settings.interval),
                                                         30.0 * 2 ** min(failures[label] - 1, 6))
            else:
                failures[label] = 0


class GracefulSigterm:
    """Under ``once`` (main thread) turn SIGTERM into "stop after the messages in flight"."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: Optional[Any] = None

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            self.previous = signal.signal(signal.SIGTERM, lambda signum, frame: self.stop.set())
        except ValueError:
            self.previous = None

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def write_last_run(settings: Any, results: Dict[str, DrainResult]) -> None:
    """Record the last run for ``ssm status`` and the probes: the totals, and each queue under ``queues``
    (best effort: a full disk must not fail the run)."""
    total = combined(results)
    data: Dict[str, Any] = {"finished": iso_utc(utcnow()), **total.summary(), "duration": round(total.duration, 3),
                            "error": total.error, "queues": {}}
    for queue in settings.queues:
        result = results.get(queue.label, DrainResult())
        data["queues"][queue.label] = {"queue_dir": str(queue.queue_dir), "destination": queue.destination,
                                       **result.summary(), "duration": round(result.duration, 3),
                                       "error": result.error}
    try:
        atomic_write_text(state_dir(settings) / "last-run.json", json.dumps(data, indent=1) + "\n")
    except OSError:
        pass
