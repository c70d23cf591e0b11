"""``fedcloud-site images status|sync|approve``."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable, List

from ..config import Config
from ..errors import UsageError
from ..runner import run_daemon
from .settings import Settings
from .state import StateDB, state_db_path


def add_commands(actions: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    status = actions.add_parser("status", help="image versions, their state and why they failed")
    add_common(status)
    status.add_argument("--json", action="store_true", help="JSON list, one object per image version")
    status.add_argument("--lists", action="store_true", help="show the subscriptions' list state instead")
    status.set_defaults(handler=show_status, needs_config=True)

    sync = actions.add_parser("sync", help="sync all subscriptions once and exit (same as 'once')")
    add_common(sync)
    sync.add_argument("--once", action="store_true", help="accepted for compatibility; sync always runs once")
    sync.set_defaults(handler=run_sync, needs_config=True)

    approve = actions.add_parser("approve", help="allow an image of a 'policy: approve' subscription")
    add_common(approve)
    approve.add_argument("subscription")
    approve.add_argument("identifier", nargs="+", help="dc:identifier of the image(s)")
    approve.set_defaults(handler=approve_images, needs_config=True)


def run_sync(args: argparse.Namespace, config: Config) -> int:
    return run_daemon("images", args, config, once=True)


def show_status(args: argparse.Namespace, config: Config) -> int:
    settings = config.section(Settings)
    path = state_db_path(settings)
    if not path.exists():
        print("[]" if args.json else "no state yet (images have never been synced)")
        return 0
    with StateDB(path) as db:
        if args.lists:
            lists = [dict(vars(row)) for row in db.subscriptions()]
            configured = {s.name for s in settings.subscriptions if s.enabled}
            for item in lists:
                item["configured"] = item["name"] in configured
            if args.json:
                print(json.dumps(lists, indent=2))
            else:
                _print_table(lists, ["name", "state", "list_version", "list_expires", "last_success", "reason"])
            return 0
        rows = db.status()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ["subscription", "identifier", "version", "state", "image_id", "reason"])
    return 0


def approve_images(args: argparse.Namespace, config: Config) -> int:
    settings = config.section(Settings)
    names = {s.name: s for s in settings.subscriptions}
    if args.subscription not in names:
        raise UsageError(f"no subscription {args.subscription!r} "
                         f"(configured: {', '.join(sorted(names)) or 'none'})")
    settings.state_path("images").mkdir(parents=True, exist_ok=True)
    with StateDB(state_db_path(settings)) as db:
        for identifier in args.identifier:
            db.approve(args.subscription, identifier)
            print(f"approved {args.subscription} {identifier}: registered at the next sync")
    return 0


def _print_table(rows: List[dict], columns: List[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max(len(c), *(min(len(r[i]), 60) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
