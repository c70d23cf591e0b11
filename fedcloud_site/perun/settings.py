"""``perun`` section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ..schema import Duration
from ..settings import DaemonSettings


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(900)
    source: Literal["file", "rpc"] = "file"
    file: Optional[Path] = None
    max_change_fraction: float = 0.1
