"""Perun sync: the last run's age and result, the age of the Perun data, an interrupted apply.

Reads ``<perun state_dir>/perun-state.json`` (written by the perun daemon after every run):

* ``last_run``: ``ok`` is OK, ``incomplete`` WARNING, ``refused`` (a safety check stopped the
  sync: empty or stale input, a VO dropping to zero, too many changes) and ``failed`` CRITICAL;
  its age against thresholds (default 3 and 12 sync intervals);
* ``last_applied.generated_at``: when Perun generated the data last applied (Perun stopped pushing?);
* ``journal.json``: a plan whose apply was interrupted (the next run finishes it first).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..perun.settings import Settings as PerunSettings
from ..timeutil import parse_time, utcnow
from .cli import duration
from .report import Report

NAME = "perun"
HELP = "Perun sync: last run age and result, age of the Perun data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warning", type=duration, help="last run age for WARNING (default: 3 x perun.interval)")
    parser.add_argument("--critical", type=duration, help="last run age for CRITICAL (default: 12 x perun.interval)")
    parser.add_argument("--input-warning", type=duration, default=duration("3d"),
                        help="age of the applied Perun data (its generation time) for WARNING")
    parser.add_argument("--input-critical", type=duration, default=duration("7d"),
                        help="age of the applied Perun data for CRITICAL")


def run(args: argparse.Namespace, config: Any, report: Report) -> None:
    from ..perun.state import JOURNAL_FILE, StateError, SyncState

    settings = config.section(PerunSettings)
    interval = float(settings.interval)
    warning = args.warning if args.warning is not None else 3 * interval
    critical = args.critical if args.critical is not None else 12 * interval
    state_dir = Path(settings.state_path("perun"))
    try:
        state = SyncState(state_dir)
    except StateError as exc:
        report.critical(str(exc))
        return
    last = state.data.get("last_run")
    if not state.path.exists() or not isinstance(last, dict) or not last.get("time"):
        report.critical(f"no Perun sync recorded in {state.path}: the perun daemon has not run yet")
        return
    age = (utcnow() - parse_time(last["time"])).total_seconds()
    report.check_age("last sync", age, warning, critical)
    report.perf("last_run_age", round(age), "s", warning, critical, 0)
    result, reason = last.get("result"), last.get("reason")
    summary = last.get("summary") or {}
    if result == "ok":
        changed = sum(int(summary.get(k) or 0) for k in ("create", "update", "enable", "disable", "delete"))
        report.ok(f"last sync ok ({summary.get('managed', '?')} managed users, {changed} changed)")
    elif result == "incomplete":
        report.warning(f"last sync incomplete: {reason}")
    elif result == "refused":
        report.critical(f"last sync refused by a safety check: {reason} (review, then --force if intended)")
    else:
        report.critical(f"last sync {result}: {reason}")
    for key in ("managed", "failed", "conflicts", "pending_deletions"):
        if isinstance(summary.get(key), int):
            report.perf(key, summary[key], minimum=0)

    generated = state.last_generated_at
    if generated is not None:
        input_age = (utcnow() - generated).total_seconds()
        report.check_age("Perun data generated", input_age, args.input_warning, args.input_critical)
        report.perf("input_age", round(input_age), "s", args.input_warning, args.input_critical, 0)
    if (state_dir / JOURNAL_FILE).exists():
        report.warning(f"an interrupted apply is pending ({state_dir / JOURNAL_FILE}); the next run finishes it")
    report.perf("disabled_users", len(state.data.get("disabled") or {}), minimum=0)
