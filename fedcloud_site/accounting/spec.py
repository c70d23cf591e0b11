"""How the accounting daemon registers with the core (entry point ``fedcloud_site.daemons`` in setup.cfg)."""

from __future__ import annotations

from ..registry import DaemonSpec
from .settings import Settings

SPEC = DaemonSpec(
    name="accounting",
    summary="accounting extractor: APEL cloud usage records into the outgoing queue",
    settings=Settings,
    jobs="fedcloud_site.accounting.daemon:jobs",
    order=10,
    cli="fedcloud_site.accounting.cli",
    probe="fedcloud_site.probes.accounting",
)
