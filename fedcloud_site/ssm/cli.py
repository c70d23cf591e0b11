"""``fedcloud-site ssm status``: queue depth, oldest unsent message, rejects, and the last run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from ..queue import MessageQueue
from ..runner import EXIT_CONFIG, EXIT_OK


def add_commands(actions: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``status`` to ``fedcloud-site ssm``."""
    status = actions.add_parser("status", help="show the outgoing queue depth, the oldest unsent message's age "
                                               "and the last run")
    add_common(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status, needs_config=True)


def queue_status(settings: Any) -> Dict[str, Any]:
    """What ``status`` shows, as data."""
    queue_dir = Path(settings.queue_dir)
    result: Dict[str, Any] = {"queue": str(queue_dir), "transport": settings.transport,
                              "destination": settings.destination}
    if queue_dir.is_dir():
        stats = MessageQueue(queue_dir).stats()
        result.update(messages=stats.count, bytes=stats.bytes,
                      oldest_age_s=None if stats.oldest_age is None else round(stats.oldest_age),
                      locked=sum(1 for _ in queue_dir.glob("*/*.lck")))
    else:
        result.update(messages=0, bytes=0, oldest_age_s=None, locked=0)
    reject = Path(settings.reject_path)
    result["rejected"] = sum(1 for p in reject.glob("*") if not p.name.endswith(".reason")) if reject.is_dir() else 0
    result["reject_dir"] = str(reject)
    result["last_run"] = _last_run(Path(settings.state_path("ssm")) / "last-run.json")
    return result


def _last_run(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _age(seconds: Optional[int]) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"


def _status(args: argparse.Namespace, config: Any) -> int:
    settings = config.ssm
    if settings.queue_dir is None:
        print("fedcloud-site ssm status: no queue_dir configured")
        return EXIT_CONFIG
    data = queue_status(settings)
    if args.json:
        print(json.dumps(data, indent=1))
        return EXIT_OK
    print(f"queue:       {data['queue']} ({data['transport']} -> {data['destination']})")
    print(f"unsent:      {data['messages']} messages, {data['bytes']} bytes, {data['locked']} locked")
    print(f"oldest:      {_age(data['oldest_age_s'])}")
    print(f"rejected:    {data['rejected']} in {data['reject_dir']}")
    last = data["last_run"]
    if last:
        outcome = f"error: {last['error']}" if last.get("error") else "ok"
        print(f"last run:    {last.get('finished', '?')}: sent {last.get('sent', 0)}, failed {last.get('failed', 0)}, "
              f"rejected {last.get('rejected', 0)}, remaining {last.get('remaining', 0)} ({outcome})")
    else:
        print("last run:    none recorded")
    return EXIT_OK
