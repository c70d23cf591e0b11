"""Cloud backend plugin layer.

Backends are classes registered under the entry-point group ``fedcloud_site.cloud_backends`` (ours in
setup.cfg, a site's own in its package).  Each has a ``Settings`` dataclass (the schema of
``cloud.<name>`` in the configuration), a :class:`~.base.BackendDeclaration` (label, GLUE facts,
capabilities, protected users) and is built as ``Backend(settings, config)``.  This package does not
import the configuration module: :func:`open_backend` takes anything shaped like it.
"""

from __future__ import annotations

from typing import Any, List, Protocol, Type

from .. import plugins
from .base import BackendDeclaration, Capability, CloudBackend, MiddlewareFacts

ENTRY_POINT_GROUP = "fedcloud_site.cloud_backends"


class CloudChoice(Protocol):
    """The ``cloud`` section as :func:`open_backend` reads it."""

    @property
    def backend(self) -> str: ...


class BackendConfig(Protocol):
    """What :func:`open_backend` needs of a configuration (``fedcloud_site.config.Config`` is one)."""

    @property
    def cloud(self) -> CloudChoice: ...

    @property
    def cloud_backend_settings(self) -> Any: ...


def backend_names() -> List[str]:
    """Names of all installed backends."""
    return plugins.names(ENTRY_POINT_GROUP)


def backend_class(name: str) -> Type[CloudBackend]:
    """The backend class registered under ``name``; LookupError if there is none or it cannot be loaded."""
    cls = plugins.load(ENTRY_POINT_GROUP, name, "cloud backend")
    if not (isinstance(cls, type) and issubclass(cls, CloudBackend)):
        raise LookupError(f"cloud backend {name!r} is not a CloudBackend class")
    return cls


def backend_settings_class(name: str) -> type:
    """The ``Settings`` dataclass of backend ``name``."""
    settings: type = getattr(backend_class(name), "Settings")  # noqa: B009 - each backend class sets its own
    return settings


def backend_declaration(name: str) -> BackendDeclaration:
    """What backend ``name`` declares about itself."""
    return backend_class(name).declaration


def open_backend(config: BackendConfig) -> CloudBackend:
    """Build the configured backend."""
    cls: Any = backend_class(config.cloud.backend)
    backend: CloudBackend = cls(config.cloud_backend_settings, config)
    return backend


__all__ = ["BackendDeclaration", "Capability", "CloudBackend", "MiddlewareFacts", "backend_class",
           "backend_declaration", "backend_names", "backend_settings_class", "open_backend"]
