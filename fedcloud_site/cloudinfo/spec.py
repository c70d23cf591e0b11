"""How the cloudinfo daemon registers with the core (entry point ``fedcloud_site.daemons`` in setup.cfg)."""

from __future__ import annotations

from ..registry import DaemonSpec
from .settings import Settings

SPEC = DaemonSpec(
    name="cloudinfo",
    summary="cloud information provider: GLUE2 LDIF for the BDII and GLUE 2.1 JSON",
    settings=Settings,
    jobs="fedcloud_site.cloudinfo.daemon:jobs",
    order=30,
    cli="fedcloud_site.cloudinfo.cli",
    probe="fedcloud_site.probes.infosys",
)
