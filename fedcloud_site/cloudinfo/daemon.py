"""The ``cloudinfo`` daemon: render the site's GLUE information into the cache on a schedule."""

from __future__ import annotations

from typing import Any, Dict, List

from ..cloud.base import CloudAuthError, CloudUnavailable
from ..config import Config
from ..errors import JobIncomplete
from ..runner import Job, JobContext
from ..timeutil import utcnow
from .cache import note_failure, read_status, write_cache
from .model import build_model
from .settings import Settings

JOB_NAME = "cloudinfo-refresh"


def refresh(ctx: JobContext) -> Dict[str, Any]:
    """Read the cloud, render LDIF + JSON into the cache (keeping the last good one if the cloud is down)."""
    settings: Settings = ctx.config.section(Settings)
    now = utcnow()
    try:
        model = build_model(ctx.config, ctx.cloud, now, ctx.log)
    except (CloudUnavailable, CloudAuthError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        if not ctx.dry_run:
            status = note_failure(settings, error, now)
        else:
            status = read_status(settings.cache_dir)
        kept = status.get("last_success") or "never"
        raise JobIncomplete(f"cloud not readable, the cache rendered at {kept} stays published: {error}",
                            {"cache_kept_from": kept}) from exc
    except Exception as exc:  # e.g. settings missing: recorded, so that `status` and the probe show it
        if not ctx.dry_run:
            note_failure(settings, f"{type(exc).__name__}: {exc}", now)
        raise
    summary: Dict[str, Any] = dict(model.counts())
    if ctx.dry_run:
        ctx.log.info("dry run: cache not written", cache_dir=str(settings.cache_dir))
        return summary
    summary.update(write_cache(model, settings))
    if settings.ams.enabled:
        from ..ams import AmsError
        from .publish import publish_json

        try:
            message_id = publish_json(settings, settings.json_path)
        except AmsError as exc:
            raise JobIncomplete(f"the cache is written, but publishing to AMS topic {settings.ams.topic} failed: "
                                f"{exc}", {**summary, "ams_published": 0}) from exc
        summary.update(ams_published=1, ams_message_id=message_id)
    return summary


def jobs(config: Config) -> List[Job]:
    """One job: refresh the cache every ``cloudinfo.interval`` (default 30 min)."""
    settings: Settings = config.section(Settings)
    return [Job(name=JOB_NAME, func=refresh, interval=float(settings.interval), cron=settings.cron,
                jitter=float(settings.jitter))]
