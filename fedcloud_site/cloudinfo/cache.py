"""The rendered LDIF and JSON kept in ``cloudinfo.cache_dir``.

Each render streams into temporary files that replace ``cloudinfo.ldif`` and
``cloudinfo.json`` atomically, so the BDII provider always reads a whole
document.  When the cloud cannot be read the files are left alone (the last
good render stays published until it is older than ``max_cache_age``) and
``cloudinfo.status.json`` records the failure.  The status file also tells the
provider the age limit, so the provider needs no access to the configuration.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional

from ..atomic import atomic_write_text, atomic_writer
from ..timeutil import iso_utc
from .glue21json import write_json
from .ldif import write_ldif
from .model import SiteModel
from .settings import Settings

LDIF_NAME = "cloudinfo.ldif"
JSON_NAME = "cloudinfo.json"
STATUS_NAME = "cloudinfo.status.json"
#: cache files are public information: readable by the BDII's user
CACHE_MODE = 0o644
#: problems kept in the status file
STATUS_PROBLEMS = 50


def read_status(cache_dir: Path) -> Dict[str, Any]:
    """The status file's content ({} when missing or unreadable)."""
    try:
        data = json.loads((cache_dir / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_status(cache_dir: Path, status: Dict[str, Any]) -> None:
    atomic_write_text(cache_dir / STATUS_NAME, json.dumps(status, indent=1, sort_keys=True) + "\n", CACHE_MODE)


def write_cache(model: SiteModel, settings: Settings) -> Dict[str, int]:
    """Render the model into the cache (LDIF, JSON, optional JSON copy); returns entry and byte counts."""
    cache_dir = settings.cache_dir
    with atomic_writer(cache_dir / LDIF_NAME, CACHE_MODE) as out:
        writer = write_ldif(model, out)
    with atomic_writer(cache_dir / JSON_NAME, CACHE_MODE) as out:
        json_bytes = write_json(model, out)
    if settings.json_file is not None:
        with open(cache_dir / JSON_NAME, "rb") as source, atomic_writer(settings.json_file, CACHE_MODE) as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
    counts = {"ldif_entries": writer.entries, "ldif_bytes": writer.bytes, "json_bytes": json_bytes}
    status = read_status(cache_dir)
    status.update({"last_attempt": iso_utc(model.created), "last_success": iso_utc(model.created),
                   "last_error": None, "max_cache_age": float(settings.max_cache_age),
                   "counts": {**model.counts(), **counts}, "problems": model.problems[:STATUS_PROBLEMS]})
    _write_status(cache_dir, status)
    return counts


def note_failure(settings: Settings, error: str, now: datetime) -> Dict[str, Any]:
    """Record a failed refresh; the cached documents stay as they are.  Returns the status."""
    status = read_status(settings.cache_dir)
    status.update({"last_attempt": iso_utc(now), "last_error": error,
                   "max_cache_age": float(settings.max_cache_age)})
    _write_status(settings.cache_dir, status)
    return status


def cache_age(path: Path, now: float) -> Optional[float]:
    """Seconds since ``path`` was last rendered (None when it does not exist)."""
    try:
        return max(0.0, now - os.stat(path).st_mtime)
    except FileNotFoundError:
        return None
