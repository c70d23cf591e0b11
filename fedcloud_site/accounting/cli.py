"""``fedcloud-site accounting ...`` commands beyond run/once.

* ``republish --from YYYY-MM --to YYYY-MM [--project X]``: records of past months again,
  without touching the extraction state (``--dry-run`` prints them instead);
* ``status``: per-project extraction state and the queue depth (no cloud access);
* ``once --project X``: one extraction of one project.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List

from ..cloud import open_backend
from ..errors import FedcloudSiteError, JobIncomplete, UsageError, causes_field
from ..log import get_logger
from ..queue import MessageQueue
from ..timeutil import iso_utc, next_month, parse_month, utcnow
from .daemon import DAEMON, run_republish
from .settings import Settings
from .state import StateError, StateStore


def _month(text: str) -> datetime:
    try:
        year, month = parse_month(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return datetime(year, month, 1, tzinfo=timezone.utc)


def add_commands(actions: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``republish`` and ``status`` to ``fedcloud-site accounting``; ``--project`` to ``once``."""
    once = actions.choices.get("once")
    if once is not None:
        once.add_argument("--project", metavar="ID_OR_NAME", help="extract only this project")
    republish = actions.add_parser(
        "republish", help="send the records of past months again (extraction state untouched)",
        description="Regenerate the records of whole months, e.g. after an accounting outage or a "
                    "rejected message, without touching the normal extraction state. Records are "
                    "measured at the last second of each month (the current month: now).")
    add_common(republish)
    republish.add_argument("--from", dest="month_from", type=_month, required=True, metavar="YYYY-MM",
                           help="first month to republish")
    republish.add_argument("--to", dest="month_to", type=_month, required=True, metavar="YYYY-MM",
                           help="last month to republish (inclusive)")
    republish.add_argument("--project", metavar="ID_OR_NAME", help="only this project")
    republish.set_defaults(handler=_republish, needs_config=True)

    status = actions.add_parser("status", help="show each project's extraction state and the queue depth")
    add_common(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status, needs_config=True)


def _republish(args: argparse.Namespace, config: Any) -> int:
    now = utcnow().replace(microsecond=0)
    start = args.month_from
    end = min(next_month(args.month_to) - timedelta(seconds=1), now)
    if args.month_to < args.month_from:
        raise UsageError("--to is before --from")
    if start >= now:
        raise UsageError("--from is in the future")
    log = get_logger(DAEMON, job="republish")
    try:
        cloud = open_backend(config)
    except Exception as exc:  # noqa: BLE001 - report any backend start-up failure
        raise FedcloudSiteError(f"cannot open the cloud backend: {exc}") from exc
    try:
        summary = run_republish(config, cloud, start, end, log, dry_run=args.dry_run, only=args.project,
                                observed=now)
    except JobIncomplete as exc:
        log.warning("republish summary", status=exc.outcome, reason=str(exc), **exc.summary)
        return exc.exit_status
    except FedcloudSiteError as exc:
        log.error("republish summary", status=exc.outcome, error=str(exc), **causes_field(exc, args.verbose))
        return exc.exit_status
    finally:
        cloud.close()
    log.info("republish summary", status="ok", period_start=iso_utc(start), period_end=iso_utc(end), **summary)
    return 0


def _status(args: argparse.Namespace, config: Any) -> int:
    settings = config.section(Settings)
    store = StateStore(settings.state_path(DAEMON))
    projects: List[Dict[str, Any]] = []
    status = 0
    files = sorted(store.directory.glob("*.json")) if store.directory.is_dir() else []
    for path in files:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            state = store.load(str(raw.get("project")))
        except (ValueError, OSError, StateError) as exc:
            projects.append({"file": str(path), "error": str(exc)})
            status = StateError.exit_status
            continue
        if state is not None:
            projects.append({"project": state.project_id, "vo": state.vo,
                             "extracted_to": iso_utc(state.extracted_to),
                             "lag_seconds": int((utcnow() - state.extracted_to).total_seconds())})
    queues: Dict[str, Dict[str, Any]] = {}
    for kind, path in settings.queue_dirs().items():
        name = "queue" if kind == "cloud" else f"{kind}_queue"
        if path.is_dir():
            stats = MessageQueue(path).stats()
            queues[name] = {"path": str(path), "messages": stats.count, "bytes": stats.bytes,
                            "oldest_age_seconds": None if stats.oldest_age is None else int(stats.oldest_age)}
    if args.json:
        print(json.dumps({"projects": projects, "queues": queues}, indent=1, sort_keys=True))
        return status
    for entry in projects:
        if "error" in entry:
            print(f"{entry['file']}: {entry['error']}")
        else:
            print(f"{entry['project']}  vo={entry['vo']}  extracted_to={entry['extracted_to']}  "
                  f"lag={entry['lag_seconds']}s")
    if not projects:
        print("no project extracted yet")
    for name, info in queues.items():
        print(f"{name} {info['path']}: {info['messages']} messages, {info['bytes']} bytes, "
              f"oldest {info['oldest_age_seconds']}s")
    return status
