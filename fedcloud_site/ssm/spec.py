"""How the ssm daemon registers with the core (entry point ``fedcloud_site.daemons`` in setup.cfg)."""

from __future__ import annotations

from ..registry import DaemonSpec
from .settings import Settings

SPEC = DaemonSpec(
    name="ssm",
    summary="SSM sender: signs and delivers the queued accounting messages (STOMP or ARGO AMS)",
    settings=Settings,
    jobs="fedcloud_site.ssm.daemon:jobs",
    order=20,
    cli="fedcloud_site.ssm.cli",
    probe="fedcloud_site.probes.sender",
)
