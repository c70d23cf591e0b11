"""The SSM daemon: one job, ``send``, that drains the outgoing queue.

Under ``run`` the job drains the queue, then keeps watching it (a cheap poll
every ``watch_interval``) and drains again as soon as new messages appear,
until the next scheduled run is due; it then returns the summary of all its
drains.  Under ``once`` it drains once and fails (exit status 1) when anything
is left unsent.  Credentials are checked before anything is sent.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..atomic import atomic_write_text
from ..queue import MessageQueue
from ..runner import Job, JobContext, JobIncomplete
from ..timeutil import iso_utc, utcnow
from .brokers import DiscoveryError, resolve_brokers
from .pool import PooledTransport
from .sender import DrainResult, InflightJournal, Sender, journal_path, sendable
from .signing import CredentialError, Signer, ca_bundle, load_signer
from .stomp_transport import StompTransport, TlsFiles
from .transport import Transport, TransportError

DAEMON = "ssm"


def jobs(config: Any) -> List[Job]:
    """The daemon's jobs."""
    settings = config.ssm
    return [Job(name="send", func=send_job, interval=float(settings.interval), cron=settings.cron,
                jitter=float(settings.jitter))]


def state_dir(settings: Any) -> Path:
    return Path(settings.state_path(DAEMON))


def open_queue(settings: Any) -> MessageQueue:
    try:
        return MessageQueue(settings.queue_dir)
    except OSError as exc:
        raise TransportError(f"{settings.queue_dir}: cannot open the outgoing queue: {exc.strerror or exc}") from None


def make_transport(settings: Any, signer: Signer, stop: threading.Event, log: Any) -> Transport:
    """The configured transport (not yet connected)."""
    if settings.transport == "ams":
        from .ams_transport import make_ams_transport

        return make_ams_transport(settings, stop, log)
    try:
        brokers = resolve_brokers(settings, state_dir(settings), log)
    except DiscoveryError as exc:
        raise TransportError(str(exc)) from None
    tls = None
    if settings.use_ssl:
        bundle = state_dir(settings) / "broker-ca.pem"
        atomic_write_text(bundle, ca_bundle(settings.capath).decode("ascii"))
        tls = TlsFiles(cert_file=settings.certificate, key_file=settings.key, ca_file=bundle)
    members: List[Transport] = []
    for index in range(settings.connections):
        # each connection starts at another broker of the list (spreads the load, failover still in order)
        rotated = brokers[index % len(brokers):] + brokers[:index % len(brokers)]
        members.append(StompTransport(rotated, settings.destination, tls=tls, window=settings.window,
                                      receipt_timeout=float(settings.receipt_timeout),
                                      connect_timeout=float(settings.connect_timeout),
                                      heartbeat=float(settings.heartbeat), persistent=settings.persistent,
                                      reconnects=settings.reconnects, version=settings.stomp_version, stop=stop,
                                      log=log))
    return members[0] if len(members) == 1 else PooledTransport(members, log)


def drain_once(settings: Any, signer: Signer, stop: threading.Event, log: Any) -> DrainResult:
    """One drain of the queue with a fresh transport."""
    queue = open_queue(settings)
    journal = InflightJournal(journal_path(state_dir(settings)), log)
    try:
        transport = make_transport(settings, signer, stop, log)
    except (TransportError, CredentialError) as exc:
        result = DrainResult(error=str(exc))
        sender = Sender(queue, signer, _NoTransport(), journal=journal, stale_lock=float(settings.stale_lock), log=log)
        sender.prepare()
        result.remaining = queue.count()
        return result
    sender = Sender(queue, signer, transport, journal=journal, reject_dir=settings.reject_path,
                    max_message_bytes=settings.max_message_bytes, stale_lock=float(settings.stale_lock),
                    flush_timeout=float(settings.receipt_timeout), max_run_time=float(settings.max_run_time),
                    stop=stop, log=log)
    return sender.drain()


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
    """Drain the queue (and under ``run``, keep draining new messages until the next run is due)."""
    settings = ctx.settings
    log = ctx.log
    try:
        signer = load_signer(settings.certificate, settings.key, settings.capath, settings.server_cert,
                             float(settings.min_cert_lifetime))
    except CredentialError as exc:
        raise CredentialError(f"ssm cannot sign: {exc}") from None
    for warning in signer.warnings or []:
        log.warning("host certificate problem", problem=warning)
    if ctx.dry_run:
        stats = open_queue(settings).stats()
        return {"would_send": stats.count, "bytes": stats.bytes, "signer": signer.dn}
    watching = ctx.options.get("action") == "run" and settings.watch
    with GracefulSigterm(ctx.stop):
        total = drain_once(settings, signer, ctx.stop, log)
        if watching:
            total = _watch(ctx, signer, total)
    write_last_run(settings, total)
    summary = total.summary()
    if total.error is not None or total.remaining:
        reason = total.error or f"{total.remaining} messages left in the queue"
        raise JobIncomplete(reason, summary)
    return summary


def _watch(ctx: JobContext, signer: Signer, total: DrainResult) -> DrainResult:
    """Drain new messages as they appear until the next scheduled run is due."""
    settings = ctx.settings
    until = time.monotonic() + max(0.0, float(settings.interval) - float(settings.watch_interval))
    poll = max(0.2, float(settings.watch_interval))
    failures = 0
    next_try = 0.0
    while not ctx.stop.wait(poll) and time.monotonic() < until:
        if time.monotonic() < next_try:
            continue
        try:
            waiting = sendable(open_queue(settings))
        except (OSError, TransportError):
            continue
        if not waiting:
            continue
        result = drain_once(settings, signer, ctx.stop, ctx.log)
        if result.sent or result.rejected or result.error:
            ctx.log.info("drained new messages", error=result.error, **result.summary())
        total.add(result)
        if result.error is not None or not (result.sent or result.rejected):
            failures += 1  # failed, or nothing could be done: do not retry at every poll
            next_try = time.monotonic() + min(float(settings.interval), 30.0 * 2 ** min(failures - 1, 6))
        else:
            failures = 0
    return total


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


def write_last_run(settings: Any, result: DrainResult) -> None:
    """Record the last run for ``ssm status`` (best effort: a full disk must not fail the run)."""
    data = {"finished": iso_utc(utcnow()), **result.summary(), "duration": round(result.duration, 3),
            "error": result.error}
    try:
        atomic_write_text(state_dir(settings) / "last-run.json", json.dumps(data, indent=1) + "\n")
    except OSError:
        pass
