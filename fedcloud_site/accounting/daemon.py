"""The accounting daemon: one scheduled job, ``extract`` (default every 6 h).

Each run lists the projects once, then per project: loads its state, extracts its window
into the queue, advances its state.  A failing project (cloud error, bad state file,
unmapped VO) is logged and retried at the next run; the others go on.  A queue that cannot
be written (disk full, read-only) stops the run: nothing after it could be queued either.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable, Dict, List, Mapping, Optional, TextIO

from ..cloud.base import CloudBackend, CloudError
from ..queue import MessageQueue
from ..runner import Job, JobContext, JobIncomplete
from ..timeutil import iso_utc, utcnow
from .extractor import Extractor, ProjectResult, Stopped, previous_month_start, select_targets, whole_second
from .messages import FORMATS, MessageSink, PrintSink, QueueSink, QueueWriteError
from .state import StateError, StateStore

DAEMON = "accounting"


def jobs(config: Any) -> List[Job]:
    """The daemon's jobs."""
    settings = config.accounting
    return [Job(name="extract", func=extract_job, interval=float(settings.interval), cron=settings.cron,
                jitter=float(settings.jitter))]


def open_sinks(settings: Any, dry_run: bool, stream: Optional[TextIO] = None) -> Dict[str, MessageSink]:
    """Record type -> where its messages go: the queues, or stdout for a dry run."""
    if dry_run:
        printer = PrintSink(stream)
        return {kind: printer for kind in FORMATS}
    try:
        main: MessageSink = QueueSink(MessageQueue(settings.queue_dir))
        sinks = {kind: main for kind in FORMATS}
        if settings.storage_queue_dir is not None:
            sinks["storage"] = QueueSink(MessageQueue(settings.storage_queue_dir))
    except OSError as exc:
        raise QueueWriteError(f"{exc.filename or settings.queue_dir}: cannot open the outgoing queue: "
                              f"{exc.strerror or exc}") from None
    return sinks


def _add(total: Dict[str, int], result: ProjectResult) -> None:
    for key, value in result.as_dict().items():
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value


def run_extraction(config: Any, cloud: CloudBackend, now: datetime, log: Any, dry_run: bool = False,
                   only: Optional[str] = None, stop: Optional[Callable[[], bool]] = None,
                   stream: Optional[TextIO] = None) -> Dict[str, Any]:
    """One extraction run at ``now``; returns the summary, raises JobIncomplete if anything was left undone."""
    settings = config.accounting
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
        raise JobIncomplete(f"cannot list projects: {exc}", finish()) from None
    for error in errors:
        log.error("project not accounted", error=error)
        problems.append(error)
        summary["projects_failed"] += 1
    for target in targets:
        if stop():
            problems.append("stopped before all projects were extracted")
            break
        project_id = target.project.id
        plog = log.bind(project=project_id, vo=target.vo)
        summary["projects"] += 1
        try:
            state = store.load(project_id)
        except StateError as exc:
            plog.error("project skipped", error=str(exc))
            problems.append(str(exc))
            summary["projects_failed"] += 1
            continue
        start = state.extracted_to if state is not None else first_start
        if start >= now:
            summary["projects_up_to_date"] += 1
            continue
        try:
            result = extractor.extract(target, start, now)
        except CloudError as exc:
            plog.error("project extraction failed, retried next run", error=f"{type(exc).__name__}: {exc}",
                       window_start=iso_utc(start))
            problems.append(f"project {project_id}: {exc}")
            summary["projects_failed"] += 1
            continue
        except QueueWriteError as exc:
            plog.error("cannot write to the outgoing queue, run stopped", error=str(exc))
            problems.append(str(exc))
            summary["projects_failed"] += 1
            break
        except Stopped as exc:
            plog.warning("project abandoned for shutdown, retried next run", reason=str(exc))
            problems.append(str(exc))
            break
        _add(totals, result)
        if result.bad_vms:
            problems.append(f"project {project_id}: {result.bad_vms} records skipped for bad cloud data "
                            f"({result.errors[0]}{', ...' if len(result.errors) > 1 else ''})")
        if not dry_run:
            try:
                store.save(project_id, now, target.vo, result.as_dict())
            except StateError as exc:
                plog.error("state not saved; the window is sent again next run", error=str(exc))
                problems.append(str(exc))
                summary["projects_failed"] += 1
                continue
        plog.info("project extracted", window_start=iso_utc(start), window_end=iso_utc(now), **result.as_dict())
    finish()
    if problems:
        raise JobIncomplete("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5
                                                       else ""), summary)
    return summary


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
    settings = config.accounting
    observed = whole_second(observed or utcnow())
    sinks = open_sinks(settings, dry_run, stream)
    extractor = Extractor(config, cloud, sinks, observed, log)
    summary: Dict[str, Any] = {"projects": 0, "projects_failed": 0}
    totals: Dict[str, int] = {}
    problems: List[str] = []
    try:
        targets, errors = select_targets(config, cloud.list_projects(), only)
    except CloudError as exc:
        raise JobIncomplete(f"cannot list projects: {exc}", summary) from None
    for error in errors:
        log.error("project not republished", error=error)
        problems.append(error)
        summary["projects_failed"] += 1
    for target in targets:
        summary["projects"] += 1
        plog = log.bind(project=target.project.id, vo=target.vo)
        try:
            result = extractor.extract(target, whole_second(start), whole_second(end))
        except CloudError as exc:
            plog.error("project republish failed", error=f"{type(exc).__name__}: {exc}")
            problems.append(f"project {target.project.id}: {exc}")
            summary["projects_failed"] += 1
            continue
        except QueueWriteError as exc:
            plog.error("cannot write to the outgoing queue, republish stopped", error=str(exc))
            problems.append(str(exc))
            summary["projects_failed"] += 1
            break
        _add(totals, result)
        if result.bad_vms:
            problems.append(f"project {target.project.id}: {result.bad_vms} records skipped for bad cloud data "
                            f"({result.errors[0]}{', ...' if len(result.errors) > 1 else ''})")
        plog.info("project republished", period_start=iso_utc(start), period_end=iso_utc(end), **result.as_dict())
    summary.update(totals)
    if problems:
        raise JobIncomplete("; ".join(problems[:5]), summary)
    return summary
