"""Settings every daemon section shares: schedule and where state lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from .cloud.base import Capability
from .schema import Duration

STATE_ROOT = Path("/var/lib/fedcloud-site")


@dataclass
class DaemonSettings:
    """Base of each daemon's section: ``interval``/``cron`` and ``jitter`` of its jobs."""

    interval: Duration = Duration(3600)
    cron: Optional[str] = None  # crontab expression; replaces ``interval`` when set
    jitter: Duration = Duration(0)
    state_dir: Optional[Path] = None  # defaults to /var/lib/fedcloud-site/<daemon>

    def state_path(self, daemon: str) -> Path:
        """The daemon's state directory."""
        return self.state_dir if self.state_dir is not None else STATE_ROOT / daemon

    def needed_capabilities(self) -> Dict[Capability, str]:
        """The backend capabilities this section needs, each with the key that needs it ("" for the daemon).

        ``check-config`` refuses a configured section that needs a capability the backend does not declare,
        and so does the runner before it starts the daemon.
        """
        return {}

    def validate(self) -> None:
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"cron: {exc}") from exc
