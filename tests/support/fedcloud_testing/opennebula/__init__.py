"""OpenNebula XML-RPC simulator for tests and benchmarks, driven through pyone.

Typical use::

    cloud = generate(n_vms=5000, seed=7)          # or from_static("demo-site.yaml")
    with OpenNebulaSimulator(cloud) as sim:       # http://127.0.0.1:<port>/RPC2
        one = pyone.OneServer(sim.url, session="oneadmin:opennebula")
        one.vmpool.infoextended(-2, 0, -500, -1)
        sim.calls["one.vmpool.infoextended"]      # calls made
        sim.inject(OneFault("http", method="one.vmpool.infoextended", status=503))
        cloud.set_now(...); cloud.poweroff(vm_id)  # move VMs through their life cycle
"""


from .dataset import attribute_name, ensure_admin, from_static, generate
from .model import SimCloud, SimGroup, SimHistory, SimHost, SimImage, SimTemplate, SimUser, SimVM
from .server import OneError, OneFault, OpenNebulaSimulator


def config_yaml(sim: OpenNebulaSimulator, indent: str = "") -> str:
    """A ``cloud:`` section selecting the opennebula backend on ``sim`` (for test configurations)."""
    user = next(u for u in sim.cloud.users.values() if 0 in u.groups)
    lines = ["cloud:", "  backend: opennebula", "  opennebula:", f"    endpoint: {sim.url}",
             f"    username: {user.name}", f"    password: {user.password}"]
    return "".join(f"{indent}{line}\n" for line in lines)


__all__ = ["config_yaml",
           "OpenNebulaSimulator", "OneFault", "OneError", "SimCloud", "SimVM", "SimHistory", "SimUser", "SimGroup",
           "SimImage", "SimTemplate", "SimHost", "generate", "from_static", "ensure_admin", "attribute_name"]
