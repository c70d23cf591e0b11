"""``fedcloud-site ssm status``: per queue the depth, oldest unsent message, rejects and the last run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..errors import ConfigError
from ..queue import MessageQueue, count_rejected
from .settings import Settings


def add_commands(actions: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``status`` to ``fedcloud-site ssm``."""
    status = actions.add_parser("status", help="show each outgoing queue's depth, its oldest unsent message's age "
                                               "and the last run")
    add_common(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status, needs_config=True)


def _one_queue(queue: Any, last_run: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    queue_dir = Path(queue.queue_dir)
    result: Dict[str, Any] = {"name": queue.label, "queue": str(queue_dir), "destination": queue.destination}
    if queue_dir.is_dir():
        stats = MessageQueue(queue_dir).stats()
        result.update(messages=stats.count, bytes=stats.bytes,
                      oldest_age_s=None if stats.oldest_age is None else round(stats.oldest_age),
                      locked=sum(1 for _ in queue_dir.glob("*/*.lck")))
    else:
        result.update(messages=0, bytes=0, oldest_age_s=None, locked=0)
    result["rejected"] = count_rejected(queue.reject_path)
    result["reject_dir"] = str(queue.reject_path)
    runs = (last_run or {}).get("queues")
    result["last_run"] = runs.get(queue.label) if isinstance(runs, dict) else None
    return result


def queue_status(settings: Any) -> Dict[str, Any]:
    """What ``status`` shows, as data: totals over all queues, each queue under ``queues``."""
    last_run = _last_run(Path(settings.state_path("ssm")) / "last-run.json")
    queues: List[Dict[str, Any]] = [_one_queue(queue, last_run) for queue in settings.queues]
    ages = [q["oldest_age_s"] for q in queues if q["oldest_age_s"] is not None]
    return {"transport": settings.transport,
            **{key: sum(q[key] for q in queues) for key in ("messages", "bytes", "locked", "rejected")},
            "oldest_age_s": max(ages) if ages else None, "last_run": last_run, "queues": queues}


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


def _run_line(run: Optional[Dict[str, Any]], finished: Optional[str]) -> str:
    if not run:
        return "none recorded"
    outcome = f"error: {run['error']}" if run.get("error") else "ok"
    return (f"{finished or run.get('finished', '?')}: sent {run.get('sent', 0)}, failed {run.get('failed', 0)}, "
            f"rejected {run.get('rejected', 0)}, remaining {run.get('remaining', 0)} ({outcome})")


def _status(args: argparse.Namespace, config: Any) -> int:
    settings = config.section(Settings)
    if not settings.queues:
        raise ConfigError(None, "ssm.queues", "no queue configured")
    data = queue_status(settings)
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    last = data["last_run"]
    finished = last.get("finished") if last else None
    for queue in data["queues"]:
        print(f"queue {queue['name']}: {queue['queue']} ({data['transport']} -> {queue['destination']})")
        print(f"  unsent:    {queue['messages']} messages, {queue['bytes']} bytes, {queue['locked']} locked")
        print(f"  oldest:    {_age(queue['oldest_age_s'])}")
        print(f"  rejected:  {queue['rejected']} in {queue['reject_dir']}")
        # a last-run.json of a version that drained one queue has no per-queue part: it was the first queue
        run = queue["last_run"] if last and "queues" in last else (last if queue is data["queues"][0] else None)
        print(f"  last run:  {_run_line(run, finished)}")
    return 0
