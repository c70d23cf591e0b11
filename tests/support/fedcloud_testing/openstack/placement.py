"""Simulated Placement: resource providers (one per hypervisor) with VCPU/MEMORY_MB/DISK_GB inventories and usages.

Since Nova 2.88 hypervisor statistics are gone from the compute API; clients
read capacity here instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

from fedcloud_site.demo.http import Request, Response, json_response

from .common import ApiError, Service

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import OpenStackSim

MAX_VERSION = "1.39"


def render_error(exc: ApiError) -> Response:
    return json_response({"errors": [{"status": exc.status, "title": str(exc.status), "detail": exc.message,
                                      "request_id": "req-sim"}]}, exc.status)


def register(sim: OpenStackSim) -> None:
    api = _Placement(sim)
    r = sim.add_route
    r("GET", r"/placement/?", "placement.versions", api.versions, render_error)
    r("GET", r"/placement/resource_providers", "placement.resource_providers", api.providers, render_error)
    r("GET", r"/placement/resource_providers/(?P<id>[^/]+)/inventories", "placement.inventories", api.inventories,
      render_error)
    r("GET", r"/placement/resource_providers/(?P<id>[^/]+)/usages", "placement.usages", api.usages, render_error)


class _Placement(Service):
    def versions(self, request: Request) -> Response:
        return json_response({"versions": [{"id": "v1.0", "max_version": MAX_VERSION, "min_version": "1.0",
                                            "status": "CURRENT",
                                            "links": [{"rel": "self", "href": self.sim.url + "/placement/"}]}]})

    def _hypervisor(self, request: Request) -> Any:
        self.sim.token_of(request)
        hypervisor = self.data.hypervisors.get(request.match["id"])
        if hypervisor is None:
            raise ApiError(404, f"No resource provider with uuid {request.match['id']} found")
        return hypervisor

    def providers(self, request: Request) -> Response:
        self.sim.token_of(request)
        return json_response({"resource_providers": [
            {"uuid": h.id, "name": h.hostname, "generation": 1, "parent_provider_uuid": None,
             "root_provider_uuid": h.id,
             "links": [{"rel": "self", "href": f"/placement/resource_providers/{h.id}"}]}
            for h in self.data.hypervisors.values()]})

    def inventories(self, request: Request) -> Response:
        h = self._hypervisor(request)
        inventory: Dict[str, Dict[str, Any]] = {
            "VCPU": {"total": h.vcpus, "allocation_ratio": 1.0},
            "MEMORY_MB": {"total": h.memory_mb, "allocation_ratio": 1.0},
            "DISK_GB": {"total": h.local_gb, "allocation_ratio": 1.0},
        }
        for item in inventory.values():
            item.update({"max_unit": item["total"], "min_unit": 1, "reserved": 0, "step_size": 1})
        return json_response({"inventories": inventory, "resource_provider_generation": 1})

    def usages(self, request: Request) -> Response:
        h = self._hypervisor(request)
        servers = self.data.live_servers_on(h.hostname)
        return json_response({"usages": {"VCPU": sum(s.flavor["vcpus"] for s in servers),
                                         "MEMORY_MB": sum(s.flavor["ram"] for s in servers),
                                         "DISK_GB": sum(s.flavor["disk"] + s.flavor["ephemeral"] for s in servers)},
                              "resource_provider_generation": 1})
