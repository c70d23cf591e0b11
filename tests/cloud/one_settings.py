"""``cloud.opennebula`` settings for tests that build the backend directly on an OpenNebula simulator."""

from __future__ import annotations

from typing import Any

from fedcloud_site.cloud.opennebula import OpenNebulaSettings
from fedcloud_site.schema import Secret
from fedcloud_testing.opennebula import OpenNebulaSimulator


def backend_settings(sim: OpenNebulaSimulator, **overrides: Any) -> OpenNebulaSettings:
    """Settings pointing at ``sim`` as oneadmin."""
    user = next(u for u in sim.cloud.users.values() if 0 in u.groups)
    values: dict = {"endpoint": sim.url, "username": user.name, "password": Secret(user.password),
                    "poll_interval": 0.01}
    values.update(overrides)
    return OpenNebulaSettings(**values)
