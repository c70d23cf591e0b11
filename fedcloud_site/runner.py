"""The daemon runner shared by every daemon.

A daemon package provides ``daemon.jobs(config) -> list[Job]``.  The runner
schedules them with apscheduler (interval or cron, with jitter, never two runs
of one job at once), isolates failures (a failing job is logged and retried
with backoff while the others keep running), reloads the configuration on
SIGHUP (keeping the old one if the new one is invalid), stops cleanly on
SIGTERM/SIGINT (running jobs see ``ctx.stop`` and finish or abandon their unit
of work safely), talks to systemd (READY, STATUS, WATCHDOG, STOPPING), and
holds a lock so that two instances of one daemon cannot run at once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from . import systemd
from .cloud import open_backend
from .cloud.base import CloudBackend
from .config import DEFAULT_CONFIG, Config, load_config
from .errors import (
    ConfigError,
    FedcloudSiteError,
    causes_field,
    exit_status_of,
)
from .filelock import FileLock
from .log import configure_logging, get_logger
from .registry import daemon_spec
from .settings import DaemonSettings
from .timeutil import utcnow

JobFunc = Callable[["JobContext"], Optional[Mapping[str, Any]]]

#: default bound of a run: this many of the job's intervals ...
STUCK_INTERVALS = 4
#: ... but never less than an hour (a long first extraction or a big image download is not a hang)
STUCK_MINIMUM = 3600.0

#: a job's summary may hold ``IDLE: True`` when the run found nothing to do (e.g. a short poll of an
#: empty queue): its summary line is then logged at debug level instead of info
IDLE = "_idle"


@dataclass(frozen=True)
class Job:
    """A unit of scheduled work of a daemon."""

    name: str
    func: JobFunc
    interval: float  # seconds between runs
    cron: Optional[str] = None  # crontab expression; wins over interval
    jitter: float = 0.0
    run_at_start: bool = True  # run once right after start-up
    # a run lasting longer is stuck (a hung peer, a spinning library): the daemon stops feeding the systemd
    # watchdog so that systemd restarts it; None: STUCK_INTERVALS intervals, at least STUCK_MINIMUM seconds
    max_run_time: Optional[float] = None

    def run_time_bound(self) -> float:
        """Seconds after which a run of this job counts as stuck."""
        if self.max_run_time is not None:
            return self.max_run_time
        return max(STUCK_INTERVALS * self.interval, STUCK_MINIMUM)


@dataclass
class JobContext:
    """What a job gets: config, logger, cloud access, stop flag, dry-run flag."""

    config: Config
    daemon: str
    job: str
    stop: threading.Event
    dry_run: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    log: Any = None
    _cloud: Optional[CloudBackend] = None

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = get_logger(self.daemon, job=self.job)

    @property
    def settings(self) -> DaemonSettings:
        """This daemon's configuration section (typed: ``ctx.config.section(<its Settings class>)``)."""
        return self.config.daemon_settings(self.daemon)

    @property
    def cloud(self) -> CloudBackend:
        """The cloud backend, opened on first use and closed when the job ends."""
        if self._cloud is None:
            self._cloud = open_backend(self.config)
        return self._cloud

    def stopping(self) -> bool:
        """True once a shutdown was requested: stop at the next safe point."""
        return self.stop.is_set()

    def close(self) -> None:
        if self._cloud is not None:
            self._cloud.close()
            self._cloud = None


def daemon_jobs(daemon: str, config: Config) -> List[Job]:
    """The jobs of a registered daemon (its spec's ``jobs``)."""
    return daemon_spec(daemon).make_jobs(config)


def run_daemon(daemon: str, args: Any, config: Config, once: bool) -> int:
    """Run a daemon's jobs once or for ever from parsed CLI ``args``, holding its lock; the exit status."""
    runner = Runner(daemon, args.config, config=config, dry_run=args.dry_run, verbose=args.verbose,
                    options=dict(vars(args), action="once" if once else "run"))
    if once and args.dry_run:  # a dry run changes nothing: it may preview beside the running daemon
        return runner.run_once()
    with runner.locked():
        return runner.run_once() if once else runner.run_forever()


def lock_path(config: Config, daemon: str) -> Path:
    return Path(config.daemon_settings(daemon).state_path(daemon)) / f"{daemon}.lock"


class Runner:
    """Runs the jobs of one daemon, once or for ever."""

    def __init__(self, daemon: str, config_path: Optional[Path], config: Optional[Config] = None,
                 dry_run: bool = False, verbose: bool = False, options: Optional[Mapping[str, Any]] = None,
                 jobs_factory: Optional[Callable[[Config], List[Job]]] = None) -> None:
        self.daemon = daemon
        self.config_path = config_path
        self.config = config if config is not None else load_config(config_path)
        self.dry_run = dry_run
        self.verbose = verbose
        self.options = dict(options or {})
        self.jobs_factory = jobs_factory or (lambda cfg: daemon_jobs(daemon, cfg))
        self.stop = threading.Event()
        self.log = get_logger(daemon)
        self._failures: Dict[str, int] = {}
        self._last_status: Dict[str, str] = {}
        self._scheduler: Optional[BackgroundScheduler] = None
        self._reload_requested = threading.Event()
        self._wake = threading.Event()
        self._job_locks: Dict[str, threading.Lock] = {}
        self._running: Dict[str, Tuple[Job, float]] = {}  # job name -> (job, monotonic start of its run)
        self._stuck_reported: Set[str] = set()

    # -- running one job --------------------------------------------------------------------
    def run_job(self, job: Job) -> int:
        """Run one job now; returns an exit status.  Never raises (but on KeyboardInterrupt)."""
        lock = self._job_locks.setdefault(job.name, threading.Lock())
        if not lock.acquire(blocking=False):
            self.log.warning("job still running, skipping this run", job=job.name)
            return 0
        ctx = JobContext(config=self.config, daemon=self.daemon, job=job.name, stop=self.stop,
                         dry_run=self.dry_run, options=self.options)
        started = time.monotonic()
        self._running[job.name] = (job, started)
        status = 0
        try:
            summary = dict(job.func(ctx) or {})
            idle = bool(summary.pop(IDLE, False))
            summary.update({f"api_{k}": v for k, v in self._api_counts(ctx).items()})
            log = ctx.log.debug if idle else ctx.log.info
            log("run summary", status="ok", duration=round(time.monotonic() - started, 3), **summary)
            self._failures.pop(job.name, None)
            self._last_status[job.name] = "ok"
        except Exception as exc:  # noqa: BLE001 - isolate every job failure (a bug is a failed run too)
            status = exit_status_of(exc)
            self._report_failure(ctx, job, exc, time.monotonic() - started)
        finally:
            self._running.pop(job.name, None)
            ctx.close()
            lock.release()
        return status

    def stuck_jobs(self, now: Optional[float] = None) -> List[Tuple[str, float, float]]:
        """``(job, seconds running, bound)`` of every run going on for longer than its job's bound."""
        now = time.monotonic() if now is None else now
        stuck = []
        for name, (job, started) in sorted(dict(self._running).items()):
            bound = job.run_time_bound()
            if now - started > bound:
                stuck.append((name, now - started, bound))
        return stuck

    def _report_failure(self, ctx: JobContext, job: Job, exc: Exception, duration: float) -> None:
        """Log the run summary of a run that ended with ``exc``; retry a failed job soon, with backoff."""
        outcome = exc.outcome if isinstance(exc, FedcloudSiteError) else FedcloudSiteError.outcome
        summary = exc.summary if isinstance(exc, FedcloudSiteError) else {}
        causes = causes_field(exc, self.verbose)
        self._last_status[job.name] = f"{outcome}: {exc}"
        if outcome == "incomplete":
            ctx.log.warning("run summary", status=outcome, reason=str(exc), duration=round(duration, 3),
                            **causes, **summary)
        elif outcome == "refused":
            ctx.log.error("run summary", status=outcome, reason=str(exc), duration=round(duration, 3),
                          **causes, **summary)
        else:
            failures = self._failures.get(job.name, 0) + 1
            self._failures[job.name] = failures
            ctx.log.error("run summary", status=outcome, error=f"{type(exc).__name__}: {exc}", failures=failures,
                          duration=round(duration, 3), exc_info=self.verbose, **causes, **summary)
            self._schedule_retry(job, failures)

    @staticmethod
    def _api_counts(ctx: JobContext) -> Mapping[str, Any]:
        if ctx._cloud is None:
            return {}
        counts = ctx._cloud.request_count()
        return {"requests": sum(v for v in counts.values() if isinstance(v, int))} if counts else {}

    def run_once(self) -> int:
        """Run every job once, in order; the worst exit status wins."""
        status = 0
        for job in self.jobs_factory(self.config):
            if self.stop.is_set():
                break
            status = max(status, self.run_job(job))
        return status

    # -- scheduling -------------------------------------------------------------------------
    def _trigger(self, job: Job) -> Any:
        if job.cron:
            return CronTrigger.from_crontab(job.cron, timezone="UTC", jitter=int(job.jitter) or None)
        return IntervalTrigger(seconds=max(job.interval, 1), timezone="UTC", jitter=int(job.jitter) or None)

    def _schedule(self, scheduler: BackgroundScheduler, first_run: bool) -> None:
        for job in self.jobs_factory(self.config):
            scheduler.add_job(self.run_job, self._trigger(job), args=[job], id=job.name, name=job.name,
                              max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True)
            if first_run and job.run_at_start:
                scheduler.add_job(self.run_job, DateTrigger(utcnow()), args=[job], id=f"{job.name}-start",
                                  max_instances=1, replace_existing=True)

    def _schedule_retry(self, job: Job, failures: int) -> None:
        scheduler = self._scheduler
        if scheduler is None or self.stop.is_set():
            return
        delay = min(job.interval, 30 * 2 ** min(failures - 1, 10))
        try:
            scheduler.add_job(self.run_job, DateTrigger(utcnow() + timedelta(seconds=delay)), args=[job],
                              id=f"{job.name}-retry", max_instances=1, replace_existing=True)
        except Exception:  # noqa: BLE001 - scheduler shutting down
            return
        self.log.info("retry scheduled", job=job.name, in_seconds=round(delay, 1))

    def reload(self) -> bool:
        """Re-read the configuration; keep the old one if the new one is invalid or cannot be loaded at all."""
        try:
            config = load_config(self.config_path)
        except Exception as exc:  # noqa: BLE001 - whatever the new files hold, the daemon keeps running
            error = str(exc) if isinstance(exc, ConfigError) else \
                f"{self.config_path or DEFAULT_CONFIG}: {type(exc).__name__}: {exc}"
            self.log.error("configuration reload failed, keeping the previous configuration", error=error)
            systemd.notify(f"STATUS=reload failed, running with previous configuration: {error}"[:1000])
            return False
        self.config = config
        configure_logging(config.logging, self.verbose)
        if self._scheduler is not None:
            for scheduled in self._scheduler.get_jobs():
                if not scheduled.id.endswith(("-start", "-retry")):
                    scheduled.remove()
            self._schedule(self._scheduler, first_run=False)
        self.log.info("configuration reloaded", files=[str(f) for f in config.files])
        return True

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested.set()
        else:
            self.stop.set()
        self._wake.set()

    def run_forever(self, install_signals: bool = True) -> int:
        """Schedule the jobs and serve until SIGTERM/SIGINT."""
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)
        scheduler = BackgroundScheduler(timezone="UTC", executors={"default": ThreadPoolExecutor(4)})
        self._scheduler = scheduler
        self._schedule(scheduler, first_run=True)
        scheduler.start()
        systemd.notify("READY=1\nSTATUS=running")
        self.log.info("daemon started", jobs=[j.id for j in scheduler.get_jobs()], pid=os.getpid())
        watchdog = systemd.watchdog_interval()
        tick = min(watchdog or 5.0, 5.0)
        try:
            while not self.stop.is_set():
                self._wake.wait(tick)
                self._wake.clear()
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    systemd.notify("RELOADING=1")
                    self.reload()
                    systemd.notify("READY=1")
                if self._report_stuck_jobs():
                    continue  # no WATCHDOG=1: systemd restarts a daemon whose job hangs (WatchdogSec)
                if watchdog:
                    systemd.notify("WATCHDOG=1")
                status = ", ".join(f"{k}: {v}" for k, v in sorted(self._last_status.items()))
                if status:
                    systemd.notify(f"STATUS={status}"[:1000])
        finally:
            systemd.notify("STOPPING=1")
            self.log.info("stopping: waiting for running jobs to finish their current unit of work")
            scheduler.shutdown(wait=True)
            self._scheduler = None
            self.log.info("daemon stopped")
        return 0

    def _report_stuck_jobs(self) -> bool:
        """Tell systemd (STATUS) and the log about runs past their bound; True while any is stuck."""
        stuck = self.stuck_jobs()
        names = {name for name, _, _ in stuck}
        for name, running, bound in stuck:
            if name not in self._stuck_reported:
                self.log.error("job stuck: no more watchdog pings, systemd restarts the daemon if it watches it",
                               job=name, running_seconds=round(running), bound_seconds=round(bound))
        self._stuck_reported = names
        if stuck:
            text = "; ".join(f"{name} running for {running:.0f} s (bound {bound:.0f} s)" for name, running, bound
                             in stuck)
            systemd.notify(f"STATUS=stuck: {text}"[:1000])
        return bool(stuck)

    def locked(self) -> FileLock:
        """The lock that keeps a second instance of this daemon from running."""
        return FileLock(lock_path(self.config, self.daemon))

