"""Jobs of the ``images`` daemon: one sync of every subscription per interval."""

from __future__ import annotations

from typing import Any, Dict, List

from ..config import Config
from ..errors import JobIncomplete
from ..runner import Job, JobContext
from .settings import Settings
from .sync import Sync


def sync_job(ctx: JobContext) -> Dict[str, Any]:
    """Refresh lists, download/register new images, retire old ones; incomplete when something failed."""
    settings = ctx.config.section(Settings)
    summary = Sync(ctx.config, settings, lambda: ctx.cloud, ctx.log, stop=ctx.stop, dry_run=ctx.dry_run).run()
    counts: Dict[str, Any] = summary.as_dict()
    if summary.problems:
        shown = "; ".join(summary.problems[:5]) + (f" (+{len(summary.problems) - 5} more)"
                                                   if len(summary.problems) > 5 else "")
        raise JobIncomplete(shown, counts)
    return counts


def jobs(config: Config) -> List[Job]:
    settings = config.section(Settings)
    return [Job("images-sync", sync_job, interval=float(settings.interval), cron=settings.cron,
                jitter=float(settings.jitter))]
