"""``ssm`` section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..schema import Duration
from ..settings import DaemonSettings


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(300)
    queue_dir: Optional[Path] = None  # defaults to accounting.queue_dir

    def finish(self, config: Any) -> None:
        """Fill defaults that depend on other sections."""
        if self.queue_dir is None and "accounting" in config.daemons:
            self.queue_dir = config.daemons["accounting"].queue_dir
