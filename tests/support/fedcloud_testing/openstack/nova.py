"""Simulated Nova (compute API v2.1 with microversions up to ``sim.nova_max_version``)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from fedcloud_site.demo.http import Request, Response, json_response

from .common import (
    TITLES,
    ApiError,
    ListingCache,
    Service,
    Token,
    iso_micro,
    iso_z,
    page_limit,
    page_links,
    paginate,
    query_bool,
    query_int,
    query_time,
    render_fault,
    short_page,
)
from .model import SimFlavor, SimServer

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import OpenStackSim

MIN_VERSION = (2, 1)
DEFAULT_QUOTAS = {"instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "metadata_items": 128,
                  "server_groups": 10, "server_group_members": 10}
#: servers/detail sort keys Nova accepts, with how to read them from a record
SORT_KEYS: Dict[str, Callable[[SimServer], Any]] = {
    "created_at": lambda s: s.created, "updated_at": lambda s: s.updated, "id": lambda s: s.id,
    "uuid": lambda s: s.id, "display_name": lambda s: s.name, "launched_at": lambda s: s.launched_at,
    "terminated_at": lambda s: s.terminated_at, "vm_state": lambda s: s.vm_state,
    "project_id": lambda s: s.project_id, "user_id": lambda s: s.user_id, "host": lambda s: s.host or ""}


def parse_version(text: str) -> Tuple[int, int]:
    major, _, minor = text.strip().partition(".")
    return int(major), int(minor or 0)


def _sort_key(reader: Callable[[SimServer], Any]) -> Callable[[SimServer], Tuple[bool, Any]]:
    """Sort by an attribute, None first."""
    return lambda server: (reader(server) is not None, reader(server) or 0)


render_error = render_fault


def register(sim: OpenStackSim) -> None:
    api = _Nova(sim)
    r = sim.add_route
    base = r"/compute/v2\.1(?:/[0-9a-f]{32})?"
    r("GET", r"/compute/?", "nova.versions", api.versions, render_error)
    r("GET", r"/compute/v2\.1/?", "nova.version", api.version, render_error)
    r("GET", base + r"/servers", "nova.servers", api.list_servers, render_error)
    r("GET", base + r"/servers/detail", "nova.servers.detail", api.list_servers_detail, render_error)
    r("POST", base + r"/servers", "nova.servers.create", api.create_server, render_error)
    r("GET", base + r"/servers/(?P<id>[^/]+)", "nova.server", api.get_server, render_error)
    r("DELETE", base + r"/servers/(?P<id>[^/]+)", "nova.server.delete", api.delete_server, render_error)
    r("POST", base + r"/servers/(?P<id>[^/]+)/action", "nova.server.action", api.server_action, render_error)
    r("GET", base + r"/servers/(?P<id>[^/]+)/os-instance-actions", "nova.server.instance_actions",
      api.instance_actions, render_error)
    r("GET", base + r"/flavors", "nova.flavors", api.list_flavors, render_error)
    r("GET", base + r"/flavors/detail", "nova.flavors.detail", api.list_flavors_detail, render_error)
    r("GET", base + r"/flavors/(?P<id>[^/]+)", "nova.flavor", api.get_flavor, render_error)
    r("GET", base + r"/flavors/(?P<id>[^/]+)/os-extra_specs", "nova.flavor.extra_specs", api.extra_specs,
      render_error)
    r("GET", base + r"/flavors/(?P<id>[^/]+)/os-extra_specs/(?P<key>[^/]+)", "nova.flavor.extra_spec",
      api.extra_spec, render_error)
    r("GET", base + r"/flavors/(?P<id>[^/]+)/os-flavor-access", "nova.flavor.access", api.flavor_access,
      render_error)
    r("POST", base + r"/flavors/(?P<id>[^/]+)/action", "nova.flavor.action", api.flavor_action, render_error)
    r("GET", base + r"/os-simple-tenant-usage", "nova.usage.all", api.usage_all, render_error)
    r("GET", base + r"/os-simple-tenant-usage/(?P<project>[^/]+)", "nova.usage", api.usage_project, render_error)
    r("GET", base + r"/os-hypervisors", "nova.hypervisors", api.hypervisors, render_error)
    r("GET", base + r"/os-hypervisors/detail", "nova.hypervisors.detail", api.hypervisors_detail, render_error)
    r("GET", base + r"/os-hypervisors/statistics", "nova.hypervisors.statistics", api.hypervisor_statistics,
      render_error)
    r("GET", base + r"/os-quota-sets/(?P<project>[^/]+)", "nova.quota", api.quota, render_error)
    r("GET", base + r"/os-quota-sets/(?P<project>[^/]+)/detail", "nova.quota.detail", api.quota_detail,
      render_error)
    r("GET", base + r"/os-quota-sets/(?P<project>[^/]+)/defaults", "nova.quota.defaults", api.quota_defaults,
      render_error)
    r("GET", base + r"/limits", "nova.limits", api.limits, render_error)
    r("GET", base + r"/os-availability-zone", "nova.availability_zones", api.availability_zones, render_error)
    r("GET", base + r"/extensions", "nova.extensions", api.extensions, render_error)


class _Nova(Service):
    def __init__(self, sim: OpenStackSim) -> None:
        super().__init__(sim)
        self._sorted: Tuple[Tuple[int, int], List[SimServer]] = ((-1, -1), [])
        self._listings = ListingCache()

    @property
    def max_version(self) -> Tuple[int, int]:
        return parse_version(self.sim.nova_max_version)

    # -- microversions and discovery ---------------------------------------------------------------------
    def microversion(self, request: Request) -> Tuple[int, int]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        value = None
        header = headers.get("openstack-api-version")
        if header:
            for item in header.split(","):
                service, _, wanted = item.strip().partition(" ")
                if service.lower() == "compute":
                    value = wanted.strip()
        if value is None:
            value = headers.get("x-openstack-nova-api-version")
        if not value:
            return MIN_VERSION
        if value.lower() == "latest":
            return self.max_version
        try:
            version = parse_version(value)
        except ValueError:
            raise ApiError(400, f"Invalid API version request: {value}") from None
        if not MIN_VERSION <= version <= self.max_version:
            raise ApiError(406, f"Version {value} is not supported by the API. Minimum is 2.1 and maximum is "
                                f"{self.sim.nova_max_version}.")
        return version

    def respond(self, request: Request, body: Any, status: int = 200) -> Response:
        version = "{}.{}".format(*self.microversion(request))
        return json_response(body, status, {"OpenStack-API-Version": f"compute {version}",
                                            "X-OpenStack-Nova-API-Version": version,
                                            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"})

    def _version_doc(self) -> Dict[str, Any]:
        return {"id": "v2.1", "status": "CURRENT", "version": self.sim.nova_max_version, "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": self.sim.url + "/compute/v2.1/"},
                          {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}]}

    def versions(self, request: Request) -> Response:
        v2 = {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "", "updated": "2011-01-21T11:33:21Z",
              "links": [{"rel": "self", "href": self.sim.url + "/compute/v2/"}]}
        doc = self._version_doc()
        return json_response({"versions": [v2, {k: doc[k] for k in ("id", "status", "version", "min_version",
                                                                     "updated", "links")}]})

    def version(self, request: Request) -> Response:
        return json_response({"version": self._version_doc()})

    def _link(self, path: str) -> List[Dict[str, str]]:
        return [{"rel": "self", "href": f"{self.sim.url}/compute/v2.1{path}"},
                {"rel": "bookmark", "href": f"{self.sim.url}/compute{path}"}]

    def _next_links(self, request: Request, page: List[Any], limit: int, key: str, id_of: Any = None) -> Dict[str, Any]:
        """Nova adds a next link whenever a page is full."""
        if len(page) < limit or not page:
            return {}
        last = id_of(page[-1]) if id_of else page[-1].id
        return {key: page_links(self.sim.url + request.path, request, last, limit)}

    # -- servers ------------------------------------------------------------------------------------------
    def _version(self) -> Tuple[int, int]:
        """Listings are rebuilt when the data changed (``CloudData.touch``) or a server was added directly."""
        return (self.data.version, len(self.data.servers))

    def _all_sorted(self) -> List[SimServer]:
        if self._sorted[0] != self._version():
            servers = sorted(self.data.servers.values(), key=lambda s: (s.created, s.id), reverse=True)
            self._sorted = (self._version(), servers)
        return self._sorted[1]

    def _filtered_servers(self, request: Request, token: Token) -> List[SimServer]:
        all_tenants = query_bool(request.arg("all_tenants")) if "all_tenants" in request.query else False
        if all_tenants and not token.is_reader:
            raise ApiError(403, "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed.")
        project = request.arg("project_id") or request.arg("tenant_id") if all_tenants else token.project_id
        since = query_time(request.arg("changes-since"), "changes-since")
        before = query_time(request.arg("changes-before"), "changes-before")
        if since and before and since > before:
            raise ApiError(400, "The value of changes-since must be less than or equal to changes-before.")
        deleted_only = query_bool(request.arg("deleted")) if "deleted" in request.query else False
        if deleted_only and not token.is_admin:
            deleted_only = False  # non-admins' deleted filter is ignored
        statuses = {s.upper() for s in request.query.get("status", [])}
        for key in ("user_id", "host", "flavor", "image", "name", "uuid", "ip"):
            if key in request.query and key in ("host",) and not token.is_admin:
                raise ApiError(403, f"Policy doesn't allow filtering by {key}")
        user_id, host = request.arg("user_id"), request.arg("host")
        flavor, image, name, ip = request.arg("flavor"), request.arg("image"), request.arg("name"), request.arg("ip")
        servers = self._all_sorted()
        sort_keys = request.query.get("sort_key")
        if sort_keys:
            dirs = request.query.get("sort_dir") or ["desc"]
            for key in sort_keys:
                if key not in SORT_KEYS:
                    raise ApiError(400, f"Invalid sort_key {key}")
            servers = list(servers)
            for index in range(len(sort_keys) - 1, -1, -1):
                reader = SORT_KEYS[sort_keys[index]]
                direction = dirs[index] if index < len(dirs) else dirs[-1]
                servers.sort(key=_sort_key(reader), reverse=direction == "desc")
        found = []
        for server in servers:
            if project is not None and server.project_id != project:
                continue
            if server.deleted:
                if not (since or before or deleted_only or "DELETED" in statuses):
                    continue
            elif deleted_only:
                continue
            if since is not None and server.updated < since:
                continue
            if before is not None and server.updated > before:
                continue
            if statuses and server.status not in statuses:
                continue
            if user_id is not None and server.user_id != user_id:
                continue
            if host is not None and server.host != host:
                continue
            if flavor is not None and server.flavor["id"] != flavor:
                continue
            if image is not None and server.image_id != image:
                continue
            if name is not None and name not in server.name:
                continue
            if ip is not None and not any(a.addr.startswith(ip) for a in server.addresses):
                continue
            found.append(server)
        return found

    def _page(self, request: Request, detail: bool) -> Response:
        token = self._token(request)
        version = self.microversion(request)
        limit = page_limit(request, self.sim.max_limit)
        key = ("servers", token.project_id, token.is_reader, token.is_admin,
               tuple(sorted((k, tuple(v)) for k, v in request.query.items() if k not in ("marker", "limit"))))
        servers, index = self._listings.get(key, self._version(), lambda: self._filtered_servers(request, token))
        page, _ = paginate(servers, request.arg("marker"), limit, index=index)
        if short_page(request):
            page = page[: max(1, len(page) // 2) if len(page) > 1 else len(page)]
            links: Dict[str, Any] = {}
        else:
            links = self._next_links(request, page, limit, "servers_links")
        if detail:
            attached = self._attachments()
            items = [self.server_body(s, version, token, attached) for s in page]
        else:
            items = [{"id": s.id, "name": s.name, "links": self._link(f"/servers/{s.id}")} for s in page]
        return self.respond(request, dict({"servers": items}, **links))

    def list_servers(self, request: Request) -> Response:
        return self._page(request, detail=False)

    def list_servers_detail(self, request: Request) -> Response:
        return self._page(request, detail=True)

    def _flavor_for_server(self, server: SimServer, version: Tuple[int, int]) -> Dict[str, Any]:
        snap = server.flavor
        if version >= (2, 47):
            body = {"vcpus": snap["vcpus"], "ram": snap["ram"], "disk": snap["disk"], "ephemeral": snap["ephemeral"],
                    "swap": snap["swap"], "original_name": snap["name"]}
            body["extra_specs"] = dict(snap["extra_specs"])
            return body
        return {"id": snap["id"], "links": [{"rel": "bookmark",
                                             "href": f"{self.sim.url}/compute/flavors/{snap['id']}"}]}

    def _attachments(self) -> Dict[str, List[str]]:
        attached: Dict[str, List[str]] = {}
        for volume in self.data.volumes.values():
            if volume.attached_to:
                attached.setdefault(volume.attached_to, []).append(volume.id)
        return attached

    def server_body(self, server: SimServer, version: Tuple[int, int], token: Token,
                    attached: Optional[Dict[str, List[str]]] = None) -> Dict[str, Any]:
        addresses: Dict[str, List[Dict[str, Any]]] = {}
        for a in server.addresses:
            addresses.setdefault(a.network, []).append({"version": a.version, "addr": a.addr,
                                                        "OS-EXT-IPS:type": a.type, "OS-EXT-IPS-MAC:mac_addr": a.mac})
        host_id = hashlib.sha224((server.project_id + (server.host or "")).encode()).hexdigest() if server.host else ""
        body: Dict[str, Any] = {
            "id": server.id, "name": server.name, "status": server.status, "tenant_id": server.project_id,
            "user_id": server.user_id, "metadata": dict(server.metadata), "hostId": host_id,
            "image": ({"id": server.image_id, "links": [{"rel": "bookmark",
                                                          "href": f"{self.sim.url}/compute/images/{server.image_id}"}]}
                      if server.image_id else ""),
            "flavor": self._flavor_for_server(server, version),
            "created": iso_z(server.created), "updated": iso_z(server.updated),
            "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
            "links": self._link(f"/servers/{server.id}"),
            "OS-DCF:diskConfig": "MANUAL", "progress": 0 if server.status != "ACTIVE" else 100,
            "OS-EXT-AZ:availability_zone": server.availability_zone, "config_drive": "",
            "key_name": server.key_name,
            "OS-SRV-USG:launched_at": iso_micro(server.launched_at),
            "OS-SRV-USG:terminated_at": iso_micro(server.terminated_at),
            "OS-EXT-STS:task_state": server.task_state, "OS-EXT-STS:vm_state": server.vm_state,
            "OS-EXT-STS:power_state": server.power_state,
            "os-extended-volumes:volumes_attached": [
                dict({"id": volume_id}, **({"delete_on_termination": False} if version >= (2, 3) else {}))
                for volume_id in (attached if attached is not None else self._attachments()).get(server.id, [])],
            "security_groups": [{"name": "default"}] if not server.deleted else [],
        }
        if token.is_admin:
            body.update({"OS-EXT-SRV-ATTR:host": server.host, "OS-EXT-SRV-ATTR:hypervisor_hostname": server.host,
                         "OS-EXT-SRV-ATTR:instance_name": "instance-%08x" % (int(server.id[:8], 16) & 0xFFFFFFF)})
            if version >= (2, 3):
                body.update({"OS-EXT-SRV-ATTR:reservation_id": "r-" + server.id[:8],
                             "OS-EXT-SRV-ATTR:launch_index": 0, "OS-EXT-SRV-ATTR:hostname": server.name,
                             "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                             "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda", "OS-EXT-SRV-ATTR:user_data": None})
        if version >= (2, 9):
            body["locked"] = server.locked
        if version >= (2, 16) and token.is_admin:
            body["host_status"] = "UP" if server.host and not server.deleted else ""
        if version >= (2, 19):
            body["description"] = server.description
        if version >= (2, 26):
            body["tags"] = list(server.tags)
        if version >= (2, 63):
            body["trusted_image_certificates"] = None
        if version >= (2, 73):
            body["locked_reason"] = None
        if version >= (2, 96):
            body["pinned_availability_zone"] = None
        return body

    def _server(self, server_id: str, token: Token) -> SimServer:
        server = self.data.servers.get(server_id)
        if server is None or server.deleted or (not token.is_reader and server.project_id != token.project_id):
            raise ApiError(404, f"Instance {server_id} could not be found.")
        return server

    def get_server(self, request: Request) -> Response:
        token = self._token(request)
        server = self._server(request.match["id"], token)
        return self.respond(request, {"server": self.server_body(server, self.microversion(request), token)})

    def create_server(self, request: Request) -> Response:
        token = self._token(request)
        ref = (request.json() or {}).get("server") or {}
        if not ref.get("name"):
            raise ApiError(400, "Invalid input for field/attribute server. Value: ... 'name' is a required property")
        flavor_ref = str(ref.get("flavorRef", "")).rstrip("/").rsplit("/", 1)[-1]
        if flavor_ref not in self.data.flavors:
            raise ApiError(400, f"Flavor {flavor_ref} could not be found.")
        image_ref = str(ref.get("imageRef") or "").rstrip("/").rsplit("/", 1)[-1] or None
        if image_ref is not None and image_ref not in self.data.images:
            raise ApiError(400, f"Image {image_ref} could not be found.")
        if token.project_id is None:
            raise ApiError(403, "Servers can only be created with a project-scoped token.")
        server = self.data.boot_server(token.project_id, token.user.id, flavor_ref, image_id=image_ref,
                                       name=str(ref["name"]))
        server.metadata = {str(k): str(v) for k, v in (ref.get("metadata") or {}).items()}
        server.key_name = ref.get("key_name")
        return self.respond(request, {"server": {"id": server.id, "links": self._link(f"/servers/{server.id}"),
                                                 "OS-DCF:diskConfig": "MANUAL", "adminPass": "sim-password",
                                                 "security_groups": [{"name": "default"}]}}, 202)

    def delete_server(self, request: Request) -> Response:
        token = self._token(request)
        server = self._server(request.match["id"], token)
        self.data.delete_server(server.id)
        return Response(204)

    ACTIONS = {"suspend": "SUSPENDED", "resume": "ACTIVE", "pause": "PAUSED", "unpause": "ACTIVE",
               "os-stop": "SHUTOFF", "os-start": "ACTIVE", "shelve": "SHELVED_OFFLOADED", "unshelve": "ACTIVE",
               "reboot": "ACTIVE"}

    def server_action(self, request: Request) -> Response:
        token = self._token(request)
        server = self._server(request.match["id"], token)
        body = request.json() or {}
        action = next(iter(body), None)
        if action not in self.ACTIONS:
            raise ApiError(400, f"There is no such action: {action}")
        self.data.set_server_status(server.id, self.ACTIONS[action])
        return Response(202)

    def instance_actions(self, request: Request) -> Response:
        """``GET /servers/{id}/os-instance-actions``: newest first; deleted servers from 2.21; ``limit``,
        ``marker`` (a request id), ``changes-since`` (on ``updated_at``) and ``updated_at`` from 2.58,
        ``changes-before`` from 2.66; a next link when a page is full."""
        token = self._token(request)
        version = self.microversion(request)
        server = self.data.servers.get(request.match["id"])
        if server is None or (server.deleted and version < (2, 21)) or (
                not token.is_reader and server.project_id != token.project_id):
            raise ApiError(404, f"Instance {request.match['id']} could not be found.")
        actions = sorted(server.actions, key=lambda a: a.start_time, reverse=True)
        links: Dict[str, Any] = {}
        if version >= (2, 58):
            since = query_time(request.arg("changes-since"), "changes-since")
            before = query_time(request.arg("changes-before"), "changes-before") if version >= (2, 66) else None
            actions = [a for a in actions if (since is None or a.updated_at >= since)
                       and (before is None or a.updated_at <= before)]
            limit = page_limit(request, 1000)
            actions, _ = paginate(actions, request.arg("marker"), limit, key=lambda a: a.request_id)
            links = self._next_links(request, actions, limit, "links", id_of=lambda a: a.request_id)

        def body(a: Any) -> Dict[str, Any]:
            entry = {"action": a.action, "instance_uuid": server.id, "message": a.message,
                     "project_id": a.project_id, "request_id": a.request_id, "start_time": iso_micro(a.start_time),
                     "user_id": a.user_id}
            if version >= (2, 58):
                entry["updated_at"] = iso_micro(a.updated_at)
            return entry

        return self.respond(request, {"instanceActions": [body(a) for a in actions], **links})

    # -- flavours ----------------------------------------------------------------------------------------------
    def _visible_flavors(self, request: Request, token: Token) -> List[SimFlavor]:
        flavors = sorted(self.data.flavors.values(), key=lambda f: f.id)
        raw = request.arg("is_public")
        if token.is_admin:
            if raw is None:
                wanted: Optional[bool] = True
            elif raw.lower() == "none":
                wanted = None
            else:
                wanted = query_bool(raw)
            flavors = [f for f in flavors if wanted is None or f.is_public == wanted]
        else:
            flavors = [f for f in flavors if f.is_public or token.project_id in f.access]
        min_ram, min_disk = query_int(request.arg("minRam"), "minRam"), query_int(request.arg("minDisk"), "minDisk")
        return [f for f in flavors
                if (min_ram is None or f.ram >= min_ram) and (min_disk is None or f.disk >= min_disk)]

    def flavor_body(self, flavor: SimFlavor, version: Tuple[int, int], detail: bool = True) -> Dict[str, Any]:
        body: Dict[str, Any] = {"id": flavor.id, "name": flavor.name, "links": self._link(f"/flavors/{flavor.id}")}
        if not detail:
            if version >= (2, 55):
                body["description"] = flavor.description
            return body
        body.update({"ram": flavor.ram, "disk": flavor.disk, "vcpus": flavor.vcpus,
                     "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
                     "swap": flavor.swap if (flavor.swap or version >= (2, 75)) else "",
                     "rxtx_factor": 1.0, "os-flavor-access:is_public": flavor.is_public,
                     "OS-FLV-DISABLED:disabled": False})
        if version >= (2, 55):
            body["description"] = flavor.description
        if version >= (2, 61):
            body["extra_specs"] = dict(flavor.extra_specs)
        return body

    def _flavor_page(self, request: Request, detail: bool) -> Response:
        token = self._token(request)
        version = self.microversion(request)
        limit = page_limit(request, self.sim.max_limit)
        page, _ = paginate(self._visible_flavors(request, token), request.arg("marker"), limit)
        links = self._next_links(request, page, limit, "flavors_links")
        return self.respond(request, dict({"flavors": [self.flavor_body(f, version, detail) for f in page]},
                                          **links))

    def list_flavors(self, request: Request) -> Response:
        return self._flavor_page(request, detail=False)

    def list_flavors_detail(self, request: Request) -> Response:
        return self._flavor_page(request, detail=True)

    def _flavor(self, flavor_id: str) -> SimFlavor:
        flavor = self.data.flavors.get(flavor_id)
        if flavor is None:
            raise ApiError(404, f"Flavor {flavor_id} could not be found.")
        return flavor

    def get_flavor(self, request: Request) -> Response:
        self._token(request)
        flavor = self._flavor(request.match["id"])
        return self.respond(request, {"flavor": self.flavor_body(flavor, self.microversion(request))})

    def extra_specs(self, request: Request) -> Response:
        self._token(request)
        return self.respond(request, {"extra_specs": dict(self._flavor(request.match["id"]).extra_specs)})

    def extra_spec(self, request: Request) -> Response:
        self._token(request)
        specs = self._flavor(request.match["id"]).extra_specs
        key = request.match["key"]
        if key not in specs:
            raise ApiError(404, f"Flavor {request.match['id']} has no extra specs with key {key}.")
        return self.respond(request, {key: specs[key]})

    @staticmethod
    def _access_body(flavor: SimFlavor) -> Dict[str, Any]:
        return {"flavor_access": [{"flavor_id": flavor.id, "tenant_id": p} for p in sorted(flavor.access)]}

    def flavor_access(self, request: Request) -> Response:
        """The projects allowed to use a private flavour (admins only, as Nova's default policy since 2023.1)."""
        self._admin(request, "os_compute_api:os-flavor-access")
        flavor = self._flavor(request.match["id"])
        if flavor.is_public:
            raise ApiError(404, "Access list not available for public flavors.")
        return self.respond(request, self._access_body(flavor))

    def flavor_action(self, request: Request) -> Response:
        """``addTenantAccess`` / ``removeTenantAccess``: answers the flavour's whole access list."""
        token = self._token(request)
        version = self.microversion(request)
        body = request.json()
        if not isinstance(body, dict) or len(body) != 1:
            raise ApiError(400, "Malformed request body")
        action, value = next(iter(body.items()))
        if action not in ("addTenantAccess", "removeTenantAccess"):
            raise ApiError(400, f"There is no such action: {action}")
        policy = "add_tenant_access" if action == "addTenantAccess" else "remove_tenant_access"
        if not token.is_admin:
            raise ApiError(403, f"Policy doesn't allow os_compute_api:os-flavor-access:{policy} to be performed.")
        tenant = value.get("tenant") if isinstance(value, dict) else None
        if not isinstance(tenant, str) or not tenant:
            raise ApiError(400, f"Invalid input for field/attribute {action}. Value: {value!r}. "
                                "'tenant' is a required property")
        if tenant not in self.data.projects:  # Nova asks Keystone whether the project exists
            raise ApiError(400, f"Project ID {tenant} is not a valid project.")
        flavor = self._flavor(request.match["id"])
        if action == "addTenantAccess":
            if version >= (2, 7) and flavor.is_public:
                raise ApiError(409, "Can not add access to a public flavor.")
            if tenant in flavor.access:
                raise ApiError(409, f"Flavor access already exists for flavor {flavor.id} and project {tenant} "
                                    "combination.")
            self.data.add_flavor_access(flavor.id, tenant)
        else:
            if tenant not in flavor.access:
                raise ApiError(404, f"Flavor access not found for {flavor.id} / {tenant} combination.")
            self.data.remove_flavor_access(flavor.id, tenant)
        return self.respond(request, self._access_body(flavor))

    # -- usage ---------------------------------------------------------------------------------------------------
    def _period(self, request: Request) -> Tuple[datetime, datetime]:
        now = self.data.now()
        start = query_time(request.arg("start"), "start") or now
        end = query_time(request.arg("end"), "end") or now
        if start > end:
            raise ApiError(400, "Invalid start time. The start time cannot occur after the end time.")
        return start, end

    def _usage_servers(self, start: datetime, end: datetime, project: Optional[str]) -> List[SimServer]:
        servers = sorted(self.data.servers.values(), key=lambda s: (s.created, s.id))
        return [s for s in servers if (project is None or s.project_id == project)
                and (s.terminated_at is None or s.terminated_at > start)
                and (s.launched_at is None or s.launched_at < end)]

    def _server_usage(self, server: SimServer, start: datetime, end: datetime) -> Dict[str, Any]:
        hours = 0.0
        if server.launched_at is not None and server.launched_at <= end and (
                server.terminated_at is None or server.terminated_at >= start):
            begin = max(server.launched_at, start)
            finish = min(server.terminated_at or end, end)
            hours = max(0.0, (finish - begin).total_seconds() / 3600.0)
        started = server.launched_at
        ended = server.terminated_at
        delta = ((ended or self.data.now()) - started) if started else None
        return {"instance_id": server.id, "name": server.name, "hours": hours,
                "memory_mb": server.flavor["ram"], "local_gb": server.flavor["disk"] + server.flavor["ephemeral"],
                "vcpus": server.flavor["vcpus"], "tenant_id": server.project_id, "flavor": server.flavor["name"],
                "started_at": iso_micro(started), "ended_at": iso_micro(ended),
                "state": "terminated" if ended else server.vm_state,
                "uptime": int(delta.total_seconds()) if delta is not None else 0}

    @staticmethod
    def _totals(project: str, usages: List[Dict[str, Any]], start: datetime, end: datetime) -> Dict[str, Any]:
        return {"tenant_id": project,
                "total_local_gb_usage": sum(u["local_gb"] * u["hours"] for u in usages),
                "total_vcpus_usage": sum(u["vcpus"] * u["hours"] for u in usages),
                "total_memory_mb_usage": sum(u["memory_mb"] * u["hours"] for u in usages),
                "total_hours": sum(u["hours"] for u in usages),
                "start": iso_micro(start), "stop": iso_micro(end)}

    def _usage_page(self, request: Request, project: Optional[str]) -> Tuple[List[SimServer], int, bool]:
        version = self.microversion(request)
        start, end = self._period(request)
        servers, index = self._listings.get(("usage", project, start, end), self._version(),
                                            lambda: self._usage_servers(start, end, project))
        if version >= (2, 40):
            limit = page_limit(request, self.sim.max_limit)
            page, _ = paginate(servers, request.arg("marker"), limit, index=index)
            return page, limit, True
        if "limit" in request.query or "marker" in request.query:
            raise ApiError(400, "Additional properties are not allowed ('limit', 'marker' were unexpected)")
        return servers, len(servers), False

    def usage_all(self, request: Request) -> Response:
        token = self._token(request)
        if not token.is_reader:
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-simple-tenant-usage:list to be performed.")
        start, end = self._period(request)
        page, limit, paged = self._usage_page(request, None)
        detailed = query_bool(request.arg("detailed", "0")) and request.arg("detailed") not in ("0",)
        by_project: Dict[str, List[Dict[str, Any]]] = {}
        for server in page:
            by_project.setdefault(server.project_id, []).append(self._server_usage(server, start, end))
        usages = []
        for project, items in by_project.items():
            entry = self._totals(project, items, start, end)
            if detailed:
                entry["server_usages"] = items
            usages.append(entry)
        body: Dict[str, Any] = {"tenant_usages": usages}
        if paged:
            body.update(self._next_links(request, page, limit, "tenant_usages_links"))
        return self.respond(request, body)

    def usage_project(self, request: Request) -> Response:
        token = self._token(request)
        project = request.match["project"]
        if not token.is_reader and token.project_id != project:
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-simple-tenant-usage:show to be performed.")
        start, end = self._period(request)
        page, limit, paged = self._usage_page(request, project)
        items = [self._server_usage(s, start, end) for s in page]
        body: Dict[str, Any] = {"tenant_usage": dict(self._totals(project, items, start, end), server_usages=items)
                                if items else {}}
        if paged:
            body.update(self._next_links(request, page, limit, "tenant_usage_links"))
        return self.respond(request, body)

    # -- hypervisors, quotas, limits -----------------------------------------------------------------------------
    def _hypervisor_body(self, hypervisor: Any, version: Tuple[int, int], detail: bool) -> Dict[str, Any]:
        body: Dict[str, Any] = {"id": hypervisor.id if version >= (2, 53) else int(hypervisor.id[:6], 16),
                                "hypervisor_hostname": hypervisor.hostname, "state": hypervisor.state,
                                "status": hypervisor.status}
        if not detail:
            return body
        servers = self.data.live_servers_on(hypervisor.hostname)
        body.update({"hypervisor_type": hypervisor.hypervisor_type, "hypervisor_version": hypervisor.hypervisor_version,
                     "host_ip": hypervisor.host_ip,
                     "service": {"host": hypervisor.hostname, "id": hypervisor.id, "disabled_reason": None}})
        if version < (2, 88):
            used_vcpus = sum(s.flavor["vcpus"] for s in servers)
            used_ram = sum(s.flavor["ram"] for s in servers) + 512
            used_disk = sum(s.flavor["disk"] + s.flavor["ephemeral"] for s in servers)
            body.update({"vcpus": hypervisor.vcpus, "vcpus_used": used_vcpus, "memory_mb": hypervisor.memory_mb,
                         "memory_mb_used": used_ram, "free_ram_mb": hypervisor.memory_mb - used_ram,
                         "local_gb": hypervisor.local_gb, "local_gb_used": used_disk,
                         "free_disk_gb": hypervisor.local_gb - used_disk, "disk_available_least": hypervisor.local_gb,
                         "running_vms": len(servers), "current_workload": 0,
                         "cpu_info": '{"arch": "x86_64", "model": "Cascadelake-Server"}'})
        else:
            body["uptime"] = " 10:00:00 up 10 days"
        return body

    def _admin(self, request: Request, policy: str) -> Token:
        token = self._token(request)
        if not token.is_reader:
            raise ApiError(403, f"Policy doesn't allow {policy} to be performed.")
        return token

    def hypervisors(self, request: Request) -> Response:
        self._admin(request, "os_compute_api:os-hypervisors:list")
        version = self.microversion(request)
        return self.respond(request, {"hypervisors": [self._hypervisor_body(h, version, False)
                                                      for h in self.data.hypervisors.values()]})

    def hypervisors_detail(self, request: Request) -> Response:
        self._admin(request, "os_compute_api:os-hypervisors:list-detail")
        version = self.microversion(request)
        hypervisors = sorted(self.data.hypervisors.values(), key=lambda h: h.id)
        limit = page_limit(request, self.sim.max_limit)
        page, _ = paginate(hypervisors, request.arg("marker"), limit) if version >= (2, 33) else (hypervisors, False)
        body: Dict[str, Any] = {"hypervisors": [self._hypervisor_body(h, version, True) for h in page]}
        if version >= (2, 33):
            body.update(self._next_links(request, page, limit, "hypervisors_links"))
        return self.respond(request, body)

    def hypervisor_statistics(self, request: Request) -> Response:
        self._admin(request, "os_compute_api:os-hypervisors:statistics")
        if self.microversion(request) >= (2, 88):
            raise ApiError(404, "The resource could not be found.")
        totals: Dict[str, int] = {}
        for h in self.data.hypervisors.values():
            for key, value in self._hypervisor_body(h, (2, 87), True).items():
                if key in ("vcpus", "vcpus_used", "memory_mb", "memory_mb_used", "free_ram_mb", "local_gb",
                           "local_gb_used", "free_disk_gb", "disk_available_least", "running_vms",
                           "current_workload"):
                    totals[key] = totals.get(key, 0) + int(value)
        totals["count"] = len(self.data.hypervisors)
        return self.respond(request, {"hypervisor_statistics": totals})

    def _quota_limits(self, project: str) -> Dict[str, Optional[int]]:
        limits: Dict[str, Optional[int]] = dict(DEFAULT_QUOTAS)
        limits.update(self.data.quotas.get(project, {}))
        return {k: (-1 if v is None else v) for k, v in limits.items()}

    def _in_use(self, project: str) -> Dict[str, int]:
        servers = [s for s in self.data.servers.values() if s.project_id == project and not s.deleted]
        return {"instances": len(servers), "cores": sum(s.flavor["vcpus"] for s in servers),
                "ram": sum(s.flavor["ram"] for s in servers), "key_pairs": 0, "metadata_items": 0,
                "server_groups": 0, "server_group_members": 0}

    def _quota_check(self, request: Request) -> str:
        token = self._token(request)
        project = request.match["project"]
        if not token.is_reader and token.project_id != project:
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")
        return project

    def quota(self, request: Request) -> Response:
        project = self._quota_check(request)
        return self.respond(request, {"quota_set": dict(self._quota_limits(project), id=project)})

    def quota_defaults(self, request: Request) -> Response:
        project = self._quota_check(request)
        return self.respond(request, {"quota_set": dict(DEFAULT_QUOTAS, id=project)})

    def quota_detail(self, request: Request) -> Response:
        project = self._quota_check(request)
        used = self._in_use(project)
        body: Dict[str, Any] = {k: {"limit": v, "in_use": used.get(k, 0), "reserved": 0}
                                for k, v in self._quota_limits(project).items()}
        body["id"] = project
        return self.respond(request, {"quota_set": body})

    def limits(self, request: Request) -> Response:
        token = self._token(request)
        project = request.arg("tenant_id") or token.project_id or ""
        q = self._quota_limits(project)
        used = self._in_use(project)
        absolute = {"maxServerMeta": q["metadata_items"], "maxTotalInstances": q["instances"],
                    "maxTotalCores": q["cores"], "maxTotalRAMSize": q["ram"], "maxTotalKeypairs": q["key_pairs"],
                    "maxServerGroups": q["server_groups"], "maxServerGroupMembers": q["server_group_members"],
                    "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"],
                    "totalRAMUsed": used["ram"], "totalServerGroupsUsed": 0}
        if self.microversion(request) < (2, 57):
            absolute.update({"maxPersonality": 5, "maxPersonalitySize": 10240})
        return self.respond(request, {"limits": {"rate": [], "absolute": absolute}})

    def availability_zones(self, request: Request) -> Response:
        self._token(request)
        return self.respond(request, {"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True},
                                                                "hosts": None}]})

    def extensions(self, request: Request) -> Response:
        self._token(request)
        return self.respond(request, {"extensions": []})


__all__ = ["register", "render_error", "TITLES"]
