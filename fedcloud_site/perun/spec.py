"""How the perun daemon registers with the core (entry point ``fedcloud_site.daemons`` in setup.cfg)."""

from __future__ import annotations

from ..registry import DaemonSpec
from .settings import Settings

SPEC = DaemonSpec(
    name="perun",
    summary="Perun user synchroniser: VO membership mirrored into cloud users and groups",
    settings=Settings,
    jobs="fedcloud_site.perun.daemon:jobs",
    order=50,
    cli="fedcloud_site.perun.cli",
    probe="fedcloud_site.probes.perun",
)
