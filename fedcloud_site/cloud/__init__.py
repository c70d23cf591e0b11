"""Cloud backend plugin layer.

Backends are classes registered under the entry-point group
``fedcloud_site.cloud_backends``.  Each has a ``Settings`` dataclass (the schema
of ``cloud.<name>`` in the configuration) and is built as ``Backend(settings, config)``.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Dict, List, Type

from .base import CloudBackend

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config

ENTRY_POINT_GROUP = "fedcloud_site.cloud_backends"

#: used when the package is run from a source tree without installed entry points
BUILTIN_BACKENDS: Dict[str, str] = {
    "static": "fedcloud_site.cloud.static:StaticBackend",
    "openstack": "fedcloud_site.cloud.openstack:OpenStackBackend",
    "opennebula": "fedcloud_site.cloud.opennebula:OpenNebulaBackend",
}


def _entry_points() -> Dict[str, str]:
    from importlib.metadata import entry_points

    found: Dict[str, str] = dict(BUILTIN_BACKENDS)
    if sys.version_info >= (3, 10):
        eps = entry_points(group=ENTRY_POINT_GROUP)
    else:  # pragma: no cover - Python 3.9
        eps = entry_points().get(ENTRY_POINT_GROUP, [])
    for ep in eps:
        found[ep.name] = ep.value
    return found


def backend_names() -> List[str]:
    """Names of all installed backends."""
    return sorted(_entry_points())


def backend_class(name: str) -> Type[CloudBackend]:
    """The backend class registered under ``name``; LookupError if there is none."""
    targets = _entry_points()
    if name not in targets:
        raise LookupError(f"unknown cloud backend {name!r} (installed: {', '.join(sorted(targets))})")
    module_name, _, attr = targets[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"cloud backend {name!r} cannot be loaded: {exc}") from None
    cls = getattr(module, attr)
    return cls  # type: ignore[no-any-return]


def backend_settings_class(name: str) -> type:
    """The ``Settings`` dataclass of backend ``name``."""
    return backend_class(name).Settings  # type: ignore[attr-defined,no-any-return]


def open_backend(config: Config) -> CloudBackend:
    """Build the configured backend."""
    cls = backend_class(config.cloud.backend)
    return cls(config.cloud_backend_settings, config)  # type: ignore[call-arg]


__all__ = ["CloudBackend", "backend_class", "backend_names", "backend_settings_class", "open_backend"]
