"""Accounting freshness: how old the last successful extraction is, and how long messages wait.

Reads the accounting daemon's per-project state (``<state_dir>/projects/*.json``: records up to
``extracted_to`` are in the queue) and the outgoing queue(s) (dirq; the oldest element's age).
The stalest project counts: one project failing at every run is not hidden by the others.
Messages moved aside by the sender (``<queue>.reject/``) need an operator: WARNING.
Default thresholds follow ``accounting.interval``: WARNING after 2 intervals, CRITICAL after 4.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, List, Optional, Tuple

from ..accounting.settings import Settings as AccountingSettings
from ..queue import MessageQueue, count_rejected, reject_dir_of
from ..timeutil import utcnow
from .cli import duration
from .report import Report

NAME = "accounting"
HELP = "age of the last successful extraction and of the oldest unsent message"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warning", type=duration, help="extraction age for WARNING (default: 2 x interval)")
    parser.add_argument("--critical", type=duration, help="extraction age for CRITICAL (default: 4 x interval)")
    parser.add_argument("--queue-warning", type=duration, default=duration("6h"),
                        help="age of the oldest unsent message for WARNING")
    parser.add_argument("--queue-critical", type=duration, default=duration("1d"),
                        help="age of the oldest unsent message for CRITICAL")


def _project_states(state_dir: Path) -> Tuple[List[Any], List[str]]:
    """(states, problems) of every project state file."""
    from ..accounting.state import StateError, StateStore

    store = StateStore(state_dir)
    states: List[Any] = []
    problems: List[str] = []
    if not store.directory.is_dir():
        return states, problems
    for path in sorted(store.directory.glob("*.json")):
        try:
            project = json.loads(path.read_text(encoding="utf-8")).get("project")
            state = store.load(str(project))
        except (ValueError, OSError, AttributeError) as exc:
            problems.append(f"{path}: unreadable accounting state ({exc})")
            continue
        except StateError as exc:
            problems.append(str(exc))
            continue
        if state is not None:
            states.append(state)
    return states, problems


def run(args: argparse.Namespace, config: Any, report: Report) -> None:
    settings = config.section(AccountingSettings)
    interval = float(settings.interval)
    warning = args.warning if args.warning is not None else 2 * interval
    critical = args.critical if args.critical is not None else 4 * interval
    state_dir = settings.state_path("accounting")
    now = utcnow()

    states, problems = _project_states(state_dir)
    for problem in problems:
        report.critical(problem)
    if states:
        stalest = min(states, key=lambda s: s.extracted_to)
        age = (now - stalest.extracted_to).total_seconds()
        if len(states) > 1:
            what = f"stalest of {len(states)} projects ({stalest.project_id}) extracted"
        else:
            what = f"project {stalest.project_id} extracted"
        report.check_age(what, age, warning, critical)
        report.perf("extraction_age", round(age), "s", warning, critical, 0)
        report.perf("projects", len(states), minimum=0)
    elif not problems:
        report.critical(f"no extraction state in {state_dir / 'projects'}: the accounting daemon has not "
                        "completed a run yet")

    ssm = config.daemons.get("ssm")
    reject_dir = getattr(ssm, "reject_dir", None) if ssm is not None else None
    queues = [("queue", settings.queue_dir, reject_dir)]
    queues += [(f"{kind}_queue", path, None) for kind, path in settings.queue_dirs().items() if kind != "cloud"]
    for label, queue_dir, rejects in queues:
        _check_queue(report, label, Path(queue_dir), rejects, args)


def _check_queue(report: Report, label: str, queue_dir: Path, reject_dir: Optional[Path],
                 args: argparse.Namespace) -> None:
    if not queue_dir.is_dir():
        report.ok(f"{label} {queue_dir} not created yet (nothing queued)")
        report.perf(f"{label}_messages", 0, minimum=0)
    else:
        stats = MessageQueue(queue_dir).stats()
        report.perf(f"{label}_messages", stats.count, minimum=0)
        report.perf(f"{label}_bytes", stats.bytes, "B", minimum=0)
        if stats.oldest_age is None:
            report.ok(f"{label} empty")
        else:
            report.check_age(f"{label}: {stats.count} unsent message(s), oldest queued", stats.oldest_age,
                             args.queue_warning, args.queue_critical)
            report.perf(f"{label}_oldest_age", round(stats.oldest_age), "s", args.queue_warning,
                        args.queue_critical, 0)
    where = reject_dir_of(queue_dir, reject_dir)
    rejected = count_rejected(where)
    report.perf(f"{label}_rejected", rejected, minimum=0)
    if rejected:
        report.warning(f"{rejected} rejected message(s) in {where} (see the .reason files; fix and "
                       f"re-queue or republish)")

