"""``accounting`` section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..schema import Duration
from ..settings import DaemonSettings


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(6 * 3600)
    queue_dir: Path = Path("/var/spool/apel/outgoing/fedcloud-site")
