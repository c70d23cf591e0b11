"""``images`` section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..schema import Duration
from ..settings import DaemonSettings


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(3600)
    cache_dir: Path = Path("/var/cache/fedcloud-site/images")
    capath: Path = Path("/etc/grid-security/certificates")
