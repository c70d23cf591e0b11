"""The ``perun`` daemon: one job that mirrors Perun VO membership into the cloud's users."""

from __future__ import annotations

from typing import Any, Dict, List

from ..config import Config
from ..runner import Job, JobContext
from .settings import Settings
from .sync import Synchroniser


def sync_job(ctx: JobContext) -> Dict[str, Any]:
    """Run one sync with the job's options (``--dry-run``, ``--force``, ``--file``)."""
    settings: Settings = ctx.config.section(Settings)
    options = ctx.options
    input_file = options.get("file")
    syncer = Synchroniser(ctx.config, settings, lambda: ctx.cloud, ctx.log, dry_run=ctx.dry_run,
                          force=bool(options.get("force")), stopping=ctx.stopping,
                          input_file=input_file, scheduled=options.get("action") == "run")
    return syncer.run()


def jobs(config: Config) -> List[Job]:
    """The sync job: every ``interval``, or every ``watch_interval`` when a drop directory is watched."""
    settings: Settings = config.section(Settings)
    interval = float(settings.interval)
    if settings.drop_dir is not None and settings.source == "file":
        interval = min(interval, float(settings.watch_interval))
    return [Job(name="perun-sync", func=sync_job, interval=interval, cron=settings.cron,
                jitter=float(settings.jitter))]
