"""Entry-point discovery shared by the two plugin registries (cloud backends and daemons).

Both are plain ``importlib.metadata`` entry points: an installed distribution (ours or a site's own
package) names ``name = module:attribute`` under a group, and nothing else has to be edited for it to be
found.  Loading is lazy: only the entry point asked for is imported.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Dict, List


def group_entry_points(group: str) -> Dict[str, EntryPoint]:
    """The entry points of ``group`` by name (the later distribution wins a duplicated name)."""
    if sys.version_info >= (3, 10):
        found = list(entry_points(group=group))
    else:  # pragma: no cover - Python 3.9
        found = list(entry_points().get(group, []))
    return {ep.name: ep for ep in found}


def names(group: str) -> List[str]:
    """Names registered under ``group``, sorted."""
    return sorted(group_entry_points(group))


def load(group: str, name: str, what: str) -> object:
    """The object registered as ``name`` in ``group``; LookupError (naming ``what`` it is) if it cannot be."""
    eps = group_entry_points(group)
    if name not in eps:
        raise LookupError(f"unknown {what} {name!r} (installed: {', '.join(sorted(eps)) or 'none'})")
    module_name, _, attr = eps[name].value.partition(":")
    try:
        module = importlib.import_module(module_name.strip())
    except ImportError as exc:
        raise LookupError(f"{what} {name!r} cannot be loaded: {exc}") from exc
    target: object = module
    for part in attr.strip().split(".") if attr else ():
        try:
            target = getattr(target, part)
        except AttributeError as cause:
            raise LookupError(f"{what} {name!r}: {eps[name].value} does not exist") from cause
    return target
