"""How the images daemon registers with the core (entry point ``fedcloud_site.daemons`` in setup.cfg)."""

from __future__ import annotations

from ..registry import DaemonSpec
from .settings import Settings

SPEC = DaemonSpec(
    name="images",
    summary="image-list subscriber: verified VO images registered in the cloud",
    settings=Settings,
    jobs="fedcloud_site.images.daemon:jobs",
    order=40,
    cli="fedcloud_site.images.cli",
    probe="fedcloud_site.probes.images",
)
