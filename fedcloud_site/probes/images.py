"""Image lists: fresh and signature-valid, no image pending too long, expired images retired.

Reads the images daemon's sqlite state (``<images state_dir>/images.sqlite``, opened read-only
and immutable: the probe never writes or locks it).  Per configured subscription:

* the last successful fetch (a list counts only once its signature verified) against
  thresholds (default 3 and 24 sync intervals); a failing list is WARNING with its reason,
  CRITICAL once the last success is older than the critical threshold;
* an expired list (``dc:date:expires`` passed) whose images are still registered is CRITICAL:
  they must be retired;
* images waiting (listed, downloading, failed, awaiting approval) longer than thresholds;
* retired (deprecated) images still in the cloud long after the grace period: WARNING.
"""

from __future__ import annotations

import argparse
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..images.settings import Settings as ImagesSettings
from ..images.state import PENDING, state_db_path
from ..timeutil import parse_time, utcnow
from .cli import duration
from .report import Report, format_duration

NAME = "images"
HELP = "image lists: fresh, signature-valid, nothing pending too long, expired images retired"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warning", type=duration,
                        help="age of a list's last successful fetch for WARNING (default: 3 x images.interval)")
    parser.add_argument("--critical", type=duration,
                        help="age of a list's last successful fetch for CRITICAL (default: 24 x images.interval)")
    parser.add_argument("--pending-warning", type=duration, default=duration("1d"),
                        help="an image waiting this long to be registered is WARNING")
    parser.add_argument("--pending-critical", type=duration, default=duration("3d"),
                        help="an image waiting this long to be registered is CRITICAL")


def _open(path: Path) -> sqlite3.Connection:
    """Read-only, immutable: no journal, no lock, nothing written next to the daemon's database."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def _time(value: Optional[str]) -> Optional[datetime]:
    try:
        return parse_time(value) if value else None
    except ValueError:
        return None


def run(args: argparse.Namespace, config: Any, report: Report) -> None:
    settings = config.section(ImagesSettings)
    interval = float(settings.interval)
    warning = args.warning if args.warning is not None else 3 * interval
    critical = args.critical if args.critical is not None else 24 * interval
    enabled = [s for s in settings.subscriptions if s.enabled]
    path = Path(state_db_path(settings))
    report.perf("subscriptions", len(enabled), minimum=0)
    if not path.exists():
        if enabled:
            report.critical(f"{path} does not exist: the images daemon has not run yet")
        else:
            report.ok("no image list subscriptions configured")
        return
    with _open(path) as conn:
        subscriptions = {row["name"]: dict(row) for row in conn.execute("SELECT * FROM subscriptions")}
        images = [dict(row) for row in conn.execute("SELECT * FROM images")]
    now = utcnow()
    for sub in enabled:
        _check_subscription(sub.name, subscriptions.get(sub.name), images, now, warning, critical, report)
    configured = {s.name for s in enabled}
    orphans = sorted({i["subscription"] for i in images if i["state"] == "registered"} - configured)
    if orphans:
        report.warning(f"images still registered from subscription(s) no longer enabled: {', '.join(orphans)} "
                       f"(retired at the next sync)")
    _check_pending(images, now, args, report)
    _check_retired(images, now, float(settings.grace_period), interval, report)
    registered = sum(1 for i in images if i["state"] == "registered")
    report.perf("images_registered", registered, minimum=0)
    if not enabled:
        report.ok("no image list subscriptions configured")


def _check_subscription(name: str, row: Optional[Dict[str, Any]], images: List[Dict[str, Any]], now: datetime,
                        warning: float, critical: float, report: Report) -> None:
    if row is None or row.get("state") == "never" or not row.get("last_success"):
        reason = f": {row['reason']}" if row and row.get("reason") else ""
        report.critical(f"list {name} never fetched successfully{reason}")
        return
    success = _time(row["last_success"])
    age = (now - success).total_seconds() if success else float("inf")
    report.perf(f"{name}_age", round(age), "s", warning, critical, 0)
    if row.get("state") == "failed":
        text = f"list {name} failing: {row.get('reason')}; last good fetch {format_duration(age)} ago"
        if age >= critical:
            report.critical(text)
        else:
            report.warning(text)
    else:
        report.check_age(f"list {name} (signed by {row.get('signer_dn') or '?'}) verified", age, warning, critical)
    expires = _time(row.get("list_expires"))
    if expires is not None and expires <= now:
        still = [i for i in images if i["subscription"] == name and i["state"] == "registered"]
        if still:
            report.critical(f"list {name} expired {format_duration((now - expires).total_seconds())} ago but "
                            f"{len(still)} of its images are still registered")
        else:
            report.warning(f"list {name} expired {format_duration((now - expires).total_seconds())} ago "
                           f"(its images are retired; the endorser must renew it)")


def _check_pending(images: List[Dict[str, Any]], now: datetime, args: argparse.Namespace, report: Report) -> None:
    waiting = []
    for image in images:
        if image["state"] not in PENDING:
            continue
        since = _time(image.get("first_seen"))
        if since is None:
            continue
        waiting.append(((now - since).total_seconds(), image))
    report.perf("images_pending", len(waiting), minimum=0)
    if not waiting:
        return
    age, oldest = max(waiting, key=lambda item: item[0])
    report.perf("oldest_pending_age", round(age), "s", args.pending_warning, args.pending_critical, 0)
    late = [item for item in waiting if item[0] >= args.pending_warning]
    reason = f", {oldest['reason']}" if oldest.get("reason") else ""
    what = (f"{len(late) or len(waiting)} image(s) not registered yet, oldest {oldest['subscription']}/"
            f"{oldest.get('title') or oldest['identifier']} ({oldest['state']}{reason})")
    report.check_age(what + " listed", age, args.pending_warning, args.pending_critical)


def _check_retired(images: List[Dict[str, Any]], now: datetime, grace: float, interval: float,
                   report: Report) -> None:
    overdue = []
    for image in images:
        since = _time(image.get("deprecated_at"))
        if image["state"] == "deprecated" and since is not None:
            if (now - since).total_seconds() > grace + 2 * interval:
                overdue.append(image)
    report.perf("images_retired_overdue", len(overdue), minimum=0)
    if overdue:
        report.warning(f"{len(overdue)} retired image(s) still in the cloud after the grace period of "
                       f"{format_duration(grace)} (in use by VMs?), e.g. {overdue[0].get('image_id')}")
