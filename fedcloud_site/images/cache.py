"""The image cache directory: file layout, disk-space and quota checks, clean-up.

Layout: ``<cache_dir>/<subscription>/<dc:identifier>/<sha512 prefix>`` for the verified download (plus
``.part`` while downloading, ``.<format>`` for a converted copy, ``.disk`` for a disk taken out of an OVA).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from typing import Iterable, List, Set, Tuple

from ..errors import FedcloudSiteError


class CacheFull(FedcloudSiteError):
    """Not enough room (quota or free disk space) for a download; the message gives the figures."""


_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")


def _safe(name: str) -> str:
    cleaned = _SAFE.sub("_", name).lstrip(".")
    return cleaned[:120] or "_"


class Cache:
    """Paths and space accounting of the cache; thread-safe reservations for parallel downloads."""

    def __init__(self, root: Path, quota: int, min_free: int) -> None:
        self.root = root
        self.quota = quota
        self.min_free = min_free
        self._lock = threading.Lock()
        self._reserved = 0

    def path_for(self, subscription: str, identifier: str, sha512: str) -> Path:
        return self.root / _safe(subscription) / _safe(identifier) / sha512[:32]

    def files(self) -> List[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.rglob("*") if p.is_file()]

    def usage(self) -> int:
        total = 0
        for path in self.files():
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                continue
        return total

    def reserve(self, needed: int, evictable: Iterable[Path] = ()) -> int:
        """Reserve ``needed`` bytes against the quota and the free disk space, evicting ``evictable``
        files (oldest first) if that makes room; returns the amount reserved (release it with
        :meth:`release`). Raises :class:`CacheFull` naming the limit that was hit."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            candidates = sorted((p for p in evictable if p.exists()), key=_mtime)
            while True:
                used = self.usage() + self._reserved
                free = shutil.disk_usage(self.root).free - self._reserved
                over_quota = used + needed > self.quota
                short_disk = free - needed < self.min_free
                if not over_quota and not short_disk:
                    self._reserved += needed
                    return needed
                if not candidates:
                    if over_quota:
                        raise CacheFull(f"cache quota hit: {used} bytes used + {needed} needed > cache_quota "
                                        f"{self.quota}")
                    raise CacheFull(f"not enough free disk space in {self.root}: {free} bytes free, "
                                    f"{needed} needed + min_free_space {self.min_free}")
                victim = candidates.pop(0)
                victim.unlink(missing_ok=True)
                _prune_dirs(victim.parent, self.root)

    def release(self, amount: int) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - amount)

    def remove(self, path: Path) -> None:
        """Delete a cached file (and its ``.part`` and converted siblings)."""
        for sibling in self.siblings(path):
            sibling.unlink(missing_ok=True)
        _prune_dirs(path.parent, self.root)

    @staticmethod
    def siblings(path: Path) -> List[Path]:
        if not path.parent.is_dir():
            return []
        return [p for p in path.parent.iterdir() if p.name == path.name or p.name.startswith(path.name + ".")]

    def clean(self, keep: Set[Path], evictable_first: List[Path]) -> Tuple[int, int]:
        """Delete files not in ``keep`` (and not being written), then, while over the quota, the
        ``evictable_first`` ones, oldest first. Returns (files deleted, bytes freed)."""
        removed = freed = 0
        kept = {str(p) for k in keep for p in self.siblings(k)} | {str(k) for k in keep}
        for path in self.files():
            if str(path) in kept or path.name.endswith(".part") and str(path)[:-5] in kept:
                continue
            size = _size(path)
            path.unlink(missing_ok=True)
            _prune_dirs(path.parent, self.root)
            removed, freed = removed + 1, freed + size
        excess = self.usage() - self.quota
        for path in sorted((p for p in evictable_first if p.exists()), key=_mtime):
            if excess <= 0:
                break
            for sibling in self.siblings(path):
                size = _size(sibling)
                sibling.unlink(missing_ok=True)
                removed, freed, excess = removed + 1, freed + size, excess - size
            _prune_dirs(path.parent, self.root)
        return removed, freed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _prune_dirs(directory: Path, root: Path) -> None:
    """Remove empty directories from ``directory`` up to (excluding) ``root``."""
    current = directory
    while current != root and root in current.parents:
        try:
            os.rmdir(current)
        except OSError:
            return
        current = current.parent
