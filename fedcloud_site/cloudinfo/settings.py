"""``cloudinfo`` section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..schema import Duration
from ..settings import DaemonSettings


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(1800)
    cache_dir: Path = Path("/var/cache/fedcloud-site/cloudinfo")
