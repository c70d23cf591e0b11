"""The BDII provider: print the cached GLUE 2.0 LDIF, quickly, without touching the cloud.

``bdii-update`` runs every file of its provider directory each cycle and reads
its standard output.  ``etc/bdii/fedcloud-site-cloudinfo-provider`` runs
``python3 -m fedcloud_site.cloudinfo.provider --cache-dir DIR``: this module
imports nothing heavy and needs neither the configuration (often readable by
root only) nor the cloud.  It copies ``cloudinfo.ldif`` to stdout when it is
younger than the age limit (``--max-age``, else the ``max_cache_age`` the daemon
recorded in the status file, else 2 hours) and prints nothing when it is older
or missing, so stale information ages out of the BDII.  Exit status: 0 printed,
1 nothing printed (``bdii-update`` ignores it; it helps people running it by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import BinaryIO, Optional, Sequence, TextIO

DEFAULT_CACHE_DIR = Path("/var/cache/fedcloud-site/cloudinfo")
DEFAULT_MAX_AGE = 7200.0
LDIF_NAME = "cloudinfo.ldif"  # same names as cache.py (kept import-free for speed)
STATUS_NAME = "cloudinfo.status.json"


def recorded_max_age(cache_dir: Path) -> Optional[float]:
    """The age limit the daemon wrote into the status file, if any."""
    try:
        value = json.loads((cache_dir / STATUS_NAME).read_text(encoding="utf-8")).get("max_cache_age")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def print_cached_ldif(cache_dir: Path, out: BinaryIO, max_age: Optional[float] = None,
                      now: Optional[float] = None, err: Optional[TextIO] = None) -> bool:
    """Copy the cached LDIF to ``out`` if it is fresh; returns whether anything was printed."""
    err = err if err is not None else sys.stderr
    limit = max_age if max_age is not None else (recorded_max_age(cache_dir) or DEFAULT_MAX_AGE)
    path = cache_dir / LDIF_NAME
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        err.write(f"fedcloud-site cloudinfo provider: {path} does not exist (has the daemon run?)\n")
        return False
    with handle:
        age = (now if now is not None else time.time()) - os.fstat(handle.fileno()).st_mtime
        if age > limit:
            err.write(f"fedcloud-site cloudinfo provider: {path} is {int(age)} s old, older than the limit of "
                      f"{int(limit)} s: publishing nothing\n")
            return False
        shutil.copyfileobj(handle, out, 1 << 20)
    out.flush()
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="fedcloud-site-cloudinfo-provider",
                                     description="Print the cached GLUE 2.0 LDIF for the BDII (nothing if stale).")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help=f"cloudinfo.cache_dir of the daemon (default {DEFAULT_CACHE_DIR})")
    parser.add_argument("--max-age", type=float, default=None,
                        help="publish nothing when the cache is older (seconds; default: the daemon's max_cache_age)")
    args = parser.parse_args(argv)
    return 0 if print_cached_ldif(args.cache_dir, sys.stdout.buffer, args.max_age) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
