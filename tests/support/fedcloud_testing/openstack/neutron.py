"""Simulated Neutron v2.0: floating IPs (filters, paging) and networks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Sequence, TypeVar

from fedcloud_site.demo.http import Request, Response, json_response

from .common import (
    ApiError,
    Service,
    Token,
    iso_z,
    page_links,
    paginate,
    query_int,
    short_page,
    unauthorized,
)
from .model import SimFloatingIP, SimNetwork

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import OpenStackSim

T = TypeVar("T")
ERROR_TYPES = {400: "HTTPBadRequest", 403: "HTTPForbidden", 404: "HTTPNotFound", 409: "HTTPConflict"}


def render_error(exc: ApiError) -> Response:
    if exc.status == 401:
        return unauthorized(exc)
    return json_response({"NeutronError": {"type": ERROR_TYPES.get(exc.status, "HTTPError"), "message": exc.message,
                                           "detail": ""}}, exc.status)


def register(sim: OpenStackSim) -> None:
    api = _Neutron(sim)
    r = sim.add_route
    r("GET", r"/network/?", "neutron.versions", api.versions, render_error)
    r("GET", r"/network/v2\.0/?", "neutron.resources", api.resources, render_error)
    r("GET", r"/network/v2\.0/floatingips", "neutron.floatingips", api.list_fips, render_error)
    r("GET", r"/network/v2\.0/floatingips/(?P<id>[^/]+)", "neutron.floatingip", api.get_fip, render_error)
    r("GET", r"/network/v2\.0/networks", "neutron.networks", api.list_networks, render_error)
    r("GET", r"/network/v2\.0/networks/(?P<id>[^/]+)", "neutron.network", api.get_network, render_error)
    r("GET", r"/network/v2\.0/extensions", "neutron.extensions", api.extensions, render_error)


class _Neutron(Service):
    def versions(self, request: Request) -> Response:
        return json_response({"versions": [{"status": "CURRENT", "id": "v2.0",
                                            "links": [{"href": self.sim.url + "/network/v2.0/", "rel": "self"}]}]})

    def resources(self, request: Request) -> Response:
        return json_response({"resources": [
            {"name": name, "collection": name + "s",
             "links": [{"href": f"{self.sim.url}/network/v2.0/{name}s", "rel": "self"}]}
            for name in ("network", "subnet", "port", "floatingip", "router")]})

    def extensions(self, request: Request) -> Response:
        self._token(request)
        return json_response({"extensions": [{"alias": alias, "name": alias, "description": "", "links": [],
                                              "updated": "2013-01-01T00:00:00-00:00"}
                                             for alias in ("router", "external-net", "standard-attr-timestamp",
                                                           "project-id", "pagination", "sorting")]})

    def _list(self, request: Request, token: Token, key: str, items: Sequence[T],
              render: Callable[[T], Dict[str, Any]], own_only: bool = True) -> Response:
        """Neutron filters on any attribute (several values = any of them), sorts by id, pages after a marker."""
        limit = query_int(request.arg("limit"), "limit")
        rendered = [(item, render(item)) for item in items]
        filters = {k: set(v) for k, v in request.query.items()
                   if k not in ("limit", "marker", "fields", "sort_key", "sort_dir", "page_reverse")}
        if own_only and not token.is_admin:
            filters["project_id"] = {token.project_id or ""}
        chosen = [(item, body) for item, body in rendered
                  if all(str(body.get(k)).lower() in {v.lower() for v in values} if isinstance(body.get(k), bool)
                         else str(body.get(k)) in values for k, values in filters.items())]
        chosen.sort(key=lambda pair: str(pair[1]["id"]))
        links: List[Dict[str, str]] = []
        if limit:
            page, more = paginate(chosen, request.arg("marker"), min(limit, self.sim.max_limit),
                                  key=lambda pair: str(pair[1]["id"]))
            if short_page(request):
                page, more = page[: len(page) // 2], False
            if more:
                links = page_links(self.sim.url + request.path, request, str(page[-1][1]["id"]), limit)
        else:
            page = chosen
        fields = request.query.get("fields")
        bodies = [{k: v for k, v in body.items() if k in fields} if fields else body for _, body in page]
        result: Dict[str, Any] = {key: bodies}
        if links:
            result[key + "_links"] = links
        return json_response(result)

    def fip_body(self, fip: SimFloatingIP) -> Dict[str, Any]:
        return {"id": fip.id, "tenant_id": fip.project_id, "project_id": fip.project_id,
                "floating_ip_address": fip.address, "floating_network_id": fip.network_id,
                "router_id": fip.router_id, "port_id": fip.port_id, "fixed_ip_address": fip.fixed_ip,
                "status": fip.status, "description": fip.description, "dns_domain": "", "dns_name": "",
                "port_forwardings": [], "revision_number": 1, "tags": [], "qos_policy_id": None,
                "created_at": iso_z(fip.created_at), "updated_at": iso_z(fip.updated_at)}

    def list_fips(self, request: Request) -> Response:
        token = self._token(request)
        return self._list(request, token, "floatingips", list(self.data.floating_ips.values()), self.fip_body)

    def get_fip(self, request: Request) -> Response:
        token = self._token(request)
        fip = self.data.floating_ips.get(request.match["id"])
        if fip is None or (not token.is_admin and fip.project_id != token.project_id):
            raise ApiError(404, f"Floating IP {request.match['id']} could not be found.")
        return json_response({"floatingip": self.fip_body(fip)})

    def network_body(self, network: SimNetwork) -> Dict[str, Any]:
        return {"id": network.id, "name": network.name, "tenant_id": network.project_id,
                "project_id": network.project_id, "admin_state_up": True, "mtu": 1450, "status": network.status,
                "subnets": [], "shared": network.shared, "availability_zone_hints": [],
                "availability_zones": ["nova"], "ipv4_address_scope": None, "ipv6_address_scope": None,
                "router:external": network.external, "description": "", "port_security_enabled": True,
                "tags": [], "created_at": iso_z(network.created_at), "updated_at": iso_z(network.created_at),
                "revision_number": 1}

    def list_networks(self, request: Request) -> Response:
        token = self._token(request)
        networks = [n for n in self.data.networks.values()
                    if token.is_admin or n.shared or n.external or n.project_id == token.project_id]
        # shared and external networks are visible to everyone
        return self._list(request, token, "networks", networks, self.network_body, own_only=False)

    def get_network(self, request: Request) -> Response:
        self._token(request)
        network = self.data.networks.get(request.match["id"])
        if network is None:
            raise ApiError(404, f"Network {request.match['id']} could not be found.")
        return json_response({"network": self.network_body(network)})
