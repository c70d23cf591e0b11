"""A simulated OpenStack cloud (Keystone v3, Nova, Glance v2, Neutron, Cinder v3, Placement) for tests and
benchmarks, faithful enough that unmodified clients (openstacksdk, keystoneauth-based clients) work with it.

Typical use::

    from fedcloud_testing.openstack import OpenStackSim, generate

    with OpenStackSim(generate(seed=1, n_projects=2, vms_per_project=500)) as sim:
        conn = sim.connect()             # openstacksdk Connection as the admin
        sim.data.advance(days=1)         # move the clock; sim.data.delete_server(...) etc.
        sim.expire_tokens()              # 401 on next request: clients must re-authenticate
        sim.inject("status", route="nova.servers.detail", status=503)
        print(sim.requests)              # {"nova.servers.detail": 3, ...}
"""

from .dataset import ADMIN_PASSWORD, ADMIN_PROJECT, ADMIN_USER, STATIC_TO_NOVA_STATUS, add_admin, from_site, generate
from .model import (
    NOVA_STATUS_STATES,
    CloudData,
    SimAddress,
    SimFlavor,
    SimFloatingIP,
    SimImage,
    SimProject,
    SimServer,
    SimUser,
    SimVolume,
)
from .simulator import OpenStackSim

__all__ = [
    "ADMIN_PASSWORD", "ADMIN_PROJECT", "ADMIN_USER", "NOVA_STATUS_STATES", "STATIC_TO_NOVA_STATUS", "CloudData",
    "OpenStackSim", "SimAddress", "SimFlavor", "SimFloatingIP", "SimImage", "SimProject", "SimServer", "SimUser",
    "SimVolume", "add_admin", "from_site", "generate",
]
