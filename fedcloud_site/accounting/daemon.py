"""The accounting daemon: one scheduled job, ``extract`` (default every 6 h).

Each run lists the projects once and loads their states, then per project: extracts its
window into the queue, advances its state (the VMs come from one listing per project, or
from one listing of all projects where that is cheaper, see ``Extractor.lists_all_projects``).
A failing project (cloud error, bad state file, unmapped VO) is logged and retried at the
next run; the others go on.  A queue that cannot be written (disk full, read-only) stops the
run: nothing after it could be queued either.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Dict, List, Mapping, Optional, TextIO

from ..cloud.base import CloudBackend, CloudError
from ..errors import JobIncomplete
from ..queue import MessageQueue
from ..runner import Job, JobContext
from ..timeutil import iso_utc, utcnow
from .extractor import (
    Extractor,
    ProjectResult,
    Stopped,
    Window,
    previous_month_start,
    select_targets,
    whole_second,
)
from .messages import FORMATS, MessageSink, PrintSink, QueueSink, QueueWriteError
from .settings import Settings
from .state import StateError, StateStore

DAEMON = "accounting"


def jobs(config: Any) -> List[Job]:
    """The daemon's jobs."""
    settings = config.section(Settings)
    return [Job(name="extract", func=extract_job, interval=float(settings.interval), cron=settings.cron,
                jitter=float(settings.jitter))]


def open_sinks(settings: Any, dry_run: bool, stream: Optional[TextIO] = None) -> Dict[str, MessageSink]:
    """Record type -> where its messages go: each enabled type's own queue, or stdout for a dry run."""
    if dry_run:
        printer = PrintSink(stream)
        return {kind: printer for kind in FORMATS}
    sinks: Dict[str, MessageSink] = {}
    for kind, path in settings.queue_dirs().items():
        try:
            sinks[kind] = QueueSink(MessageQueue(path))
        except OSError as exc:
            raise QueueWriteError(f"{exc.filename or path}: cannot open the outgoing queue of {kind} records: "
                                  f"{exc.strerror or exc}") from exc
    return sinks


def _add(total: Dict[str, int], result: ProjectResult) -> None:
    for key, value in result.as_dict().items():
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def run_extraction(config: Any, cloud: CloudBackend, now: datetime, log: Any, dry_run: bool = False,
                   only: Optional[str] = None, stop: Optional[Callable[[], bool]] = None,
                   stream: Optional[TextIO] = None) -> Dict[str, Any]:
    """One extraction run at ``now``; returns the summary, raises JobIncomplete if anything was left undone."""
    settings = config.section(Settings)
    now = whole_second(now)
    stop = stop or (lambda: False)
    started = time.monotonic()
    store = StateStore(settings.state_path(DAEMON))
    first_start = settings.first_start() or previous_month_start(now)
    summary: Dict[str, Any] = {"projects": 0, "projects_failed": 0, "projects_up_to_date": 0}
    totals: Dict[str, int] = {}
    problems: List[str] = []

    def finish() -> Dict[str, Any]:
        summary.update(totals)
        summary["extract_seconds"] = round(time.monotonic() - started, 3)
        return summary

    sinks = open_sinks(settings, dry_run, stream)
    extractor = Extractor(config, cloud, sinks, now, log, stop)
    try:
        targets, errors = select_targets(config, cloud.list_projects(), only)
    except CloudError as exc:
        raise JobIncomplete(f"cannot list projects: {exc}", finish()) from exc
    for error in errors:
        log.error("project not accounted", error=error)
        problems.append(error)
        summary["projects_failed"] += 1
    windows: List[Window] = []
    for target in targets:
        summary["projects"] += 1
        try:
            state = store.load(target.project.id)
        except StateError as exc:
            log.error("project skipped", project=target.project.id, vo=target.vo, error=str(exc))
            problems.append(str(exc))
            summary["projects_failed"] += 1
            continue
        start = state.extracted_to if state is not None else first_start
        if start >= now:
            summary["projects_up_to_date"] += 1
            continue
        windows.append(Window(target, start))
    all_projects = extractor.lists_all_projects(len(windows))
    summary["vm_listing"] = "all_projects" if all_projects else "per_project"
    for outcome in extractor.extract_windows(windows, now, all_projects):
        target, start = outcome.window.target, outcome.window.start
        project_id = target.project.id
        plog = log.bind(project=project_id, vo=target.vo)
        if outcome.error is not None:
            if not _failed(outcome.error, project_id, plog, problems, summary,
                           "project extraction failed, retried next run",
                           window_start=iso_utc(start)):
                break
            continue
        result = outcome.result
        assert result is not None
        _counted(result, project_id, totals, problems)
        if not dry_run:
            try:
                store.save(project_id, now, target.vo, result.as_dict())
            except StateError as exc:
                plog.error("state not saved; the window is sent again next run", error=str(exc))
                problems.append(str(exc))
                summary["projects_failed"] += 1
                continue
        plog.info("project extracted", window_start=iso_utc(start), window_end=iso_utc(now), **result.as_dict())
    _shared_listing_figures(extractor, summary, totals, problems)
    if extractor.history_reads:  # closed months' statuses of VMs changed since (Nova instance actions)
        summary["vm_history_reads"] = extractor.history_reads
        summary["vm_history_unreadable"] = extractor.history_unreadable
    finish()
    if problems:
        raise JobIncomplete("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5
                                                       else ""), summary)
    return summary


def _counted(result: ProjectResult, project_id: str, totals: Dict[str, int], problems: List[str]) -> None:
    """Add a project's figures to the run's; its skipped records make the run incomplete."""
    _add(totals, result)
    if result.bad_vms:
        problems.append(f"project {project_id}: {result.bad_vms} records skipped for bad cloud data "
                        f"({result.errors[0]}{', ...' if len(result.errors) > 1 else ''})")


def _failed(error: Exception, project_id: str, plog: Any, problems: List[str], summary: Dict[str, Any], message: str,
            **context: Any) -> bool:
    """Log and count a project that could not be extracted; False when the run must stop (queue, shutdown)."""
    if isinstance(error, Stopped):
        plog.warning("project abandoned for shutdown, retried next run", reason=str(error))
        problems.append(str(error))
        return False
    summary["projects_failed"] += 1
    if isinstance(error, QueueWriteError):
        plog.error("cannot write to the outgoing queue, run stopped", error=str(error))
        problems.append(str(error))
        return False
    plog.error(message, error=f"{type(error).__name__}: {error}", **context)
    problems.append(f"project {project_id}: {error}")
    return True


def _shared_listing_figures(extractor: Extractor, summary: Dict[str, Any], totals: Dict[str, int],
                            problems: List[str]) -> None:
    """Figures of listings of all projects (VMs of other projects, buffering, VMs of unknown project)."""
    if not extractor.shared_listings:
        return
    summary["vms_other_projects"] = extractor.other_vms
    summary["message_buffer_peak_bytes"] = extractor.buffer_peak
    if extractor.early_messages:
        summary["messages_sent_early"] = extractor.early_messages
    bad = extractor.unattributed_errors
    if bad:
        totals["bad_vms"] = totals.get("bad_vms", 0) + len(bad)
        problems.append(f"{len(bad)} VMs of unknown project skipped for bad cloud data "
                        f"({bad[0]}{', ...' if len(bad) > 1 else ''})")


def extract_job(ctx: JobContext) -> Mapping[str, Any]:
    """The scheduled job: extract every selected project up to now."""
    options = ctx.options or {}
    return run_extraction(ctx.config, ctx.cloud, utcnow(), ctx.log, dry_run=ctx.dry_run,
                          only=options.get("project"), stop=ctx.stopping)


def run_republish(config: Any, cloud: CloudBackend, start: datetime, end: datetime, log: Any,
                  dry_run: bool = False, only: Optional[str] = None, stream: Optional[TextIO] = None,
                  observed: Optional[datetime] = None) -> Dict[str, Any]:
    """Records of ``(start, end]`` again, for every selected project; the extraction state is not touched.

    Measurements fall on the last second of each month of the period (and on ``end``), so the
    APEL server replaces what it holds for those months with complete figures.  Raises
    JobIncomplete when a project could not be republished.
    """
    settings = config.section(Settings)
    observed = whole_second(observed or utcnow())
    sinks = open_sinks(settings, dry_run, stream)
    extractor = Extractor(config, cloud, sinks, observed, log)
    summary: Dict[str, Any] = {"projects": 0, "projects_failed": 0}
    totals: Dict[str, int] = {}
    problems: List[str] = []
    try:
        targets, errors = select_targets(config, cloud.list_projects(), only)
    except CloudError as exc:
        raise JobIncomplete(f"cannot list projects: {exc}", summary) from exc
    for error in errors:
        log.error("project not republished", error=error)
        problems.append(error)
        summary["projects_failed"] += 1
    summary["projects"] = len(targets)
    windows = [Window(target, whole_second(start)) for target in targets]
    for outcome in extractor.extract_windows(windows, whole_second(end)):
        target = outcome.window.target
        plog = log.bind(project=target.project.id, vo=target.vo)
        if outcome.error is not None:
            if not _failed(outcome.error, target.project.id, plog, problems, summary, "project republish failed"):
                break
            continue
        result = outcome.result
        assert result is not None
        _counted(result, target.project.id, totals, problems)
        plog.info("project republished", period_start=iso_utc(start), period_end=iso_utc(end), **result.as_dict())
    _shared_listing_figures(extractor, summary, totals, problems)
    summary.update(totals)
    if problems:
        raise JobIncomplete("; ".join(problems[:5]), summary)
    return summary
