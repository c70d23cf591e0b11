"""Simulated Cinder v3: volume listings (all_tenants, changes-since, paging) with microversions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from fedcloud_site.demo.http import Request, Response, json_response

from .common import (
    ApiError,
    Service,
    Token,
    iso_micro,
    page_limit,
    page_links,
    paginate,
    query_bool,
    query_time,
    render_fault,
    short_page,
)
from .model import SimVolume

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import OpenStackSim

MAX_VERSION = (3, 71)


render_error = render_fault  # as Nova's


def register(sim: OpenStackSim) -> None:
    api = _Cinder(sim)
    r = sim.add_route
    base = r"/volume/v3(?:/(?P<project>[0-9a-f]{32}))?"
    r("GET", r"/volume/?", "cinder.versions", api.versions, render_error)
    r("GET", r"/volume/v3/?", "cinder.version", api.versions, render_error)
    r("GET", base + r"/volumes", "cinder.volumes", api.list_volumes, render_error)
    r("GET", base + r"/volumes/detail", "cinder.volumes.detail", api.list_volumes_detail, render_error)
    r("GET", base + r"/volumes/(?P<id>[0-9a-f-]{36})", "cinder.volume", api.get_volume, render_error)
    r("GET", base + r"/os-quota-sets/(?P<target>[^/]+)", "cinder.quota", api.quota, render_error)


class _Cinder(Service):
    def versions(self, request: Request) -> Response:
        return json_response({"versions": [{
            "id": "v3.0", "status": "CURRENT", "version": "{}.{}".format(*MAX_VERSION), "min_version": "3.0",
            "updated": "2023-08-31T00:00:00Z", "links": [{"rel": "self", "href": self.sim.url + "/volume/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
        }]}, 300 if request.path.rstrip("/") == "/volume" else 200)

    def microversion(self, request: Request) -> Tuple[int, int]:
        header = {k.lower(): v for k, v in request.headers.items()}.get("openstack-api-version", "")
        for item in header.split(","):
            service, _, version = item.strip().partition(" ")
            if service.lower() in ("volume", "block-storage"):
                if version.strip() == "latest":
                    return MAX_VERSION
                major, _, minor = version.strip().partition(".")
                try:
                    wanted = (int(major), int(minor or 0))
                except ValueError:
                    raise ApiError(400, f"Invalid API version request: {version}") from None
                if not (3, 0) <= wanted <= MAX_VERSION:
                    raise ApiError(406, f"Version {version} is not supported by the API.")
                return wanted
        return (3, 0)

    def respond(self, request: Request, body: Any) -> Response:
        version = "{}.{}".format(*self.microversion(request))
        return json_response(body, 200, {"OpenStack-API-Version": f"volume {version}", "Vary": "OpenStack-API-Version"})

    def _token(self, request: Request) -> Token:
        token = super()._token(request)
        project = request.match.groupdict().get("project")
        if project is not None and not token.is_reader and project != token.project_id:
            raise ApiError(403, "Policy doesn't allow this project.")
        return token

    def _filtered(self, request: Request, token: Token) -> List[SimVolume]:
        all_tenants = query_bool(request.arg("all_tenants")) if "all_tenants" in request.query else False
        if all_tenants and not token.is_reader:
            all_tenants = False  # Cinder ignores all_tenants for non-admins
        project = request.arg("project_id") if all_tenants else (token.project_id or request.match.groupdict().get(
            "project"))
        since = query_time(request.arg("changes-since"), "changes-since")
        status = request.arg("status")
        name = request.arg("name")
        volumes = sorted(self.data.volumes.values(), key=lambda v: (v.created_at, v.id), reverse=True)
        found = []
        for volume in volumes:
            if project is not None and volume.project_id != project:
                continue
            if volume.deleted and since is None:
                continue
            if since is not None and volume.updated_at < since:
                continue
            if status is not None and volume.status != status:
                continue
            if name is not None and volume.name != name:
                continue
            found.append(volume)
        return found

    def volume_body(self, volume: SimVolume, version: Tuple[int, int], token: Token,
                    detail: bool = True) -> Dict[str, Any]:
        links = [{"rel": "self", "href": f"{self.sim.url}/volume/v3/{volume.project_id}/volumes/{volume.id}"},
                 {"rel": "bookmark", "href": f"{self.sim.url}/volume/{volume.project_id}/volumes/{volume.id}"}]
        if not detail:
            return {"id": volume.id, "name": volume.name, "links": links}
        attachments = []
        if volume.attached_to:
            attachments.append({"server_id": volume.attached_to, "attachment_id": volume.id[::-1],
                                "attached_at": iso_micro(volume.created_at), "host_name": None,
                                "volume_id": volume.id, "device": "/dev/vdb", "id": volume.id})
        body: Dict[str, Any] = {
            "id": volume.id, "name": volume.name, "status": volume.status, "size": volume.size,
            "availability_zone": "nova", "created_at": iso_micro(volume.created_at),
            "updated_at": iso_micro(volume.updated_at), "attachments": attachments,
            "bootable": "true" if volume.bootable else "false", "encrypted": False,
            "volume_type": volume.volume_type, "links": links, "metadata": {}, "description": volume.description,
            "multiattach": False, "snapshot_id": None, "source_volid": None, "user_id": volume.user_id,
            "consistencygroup_id": None, "replication_status": None, "migration_status": None,
        }
        if token.is_admin:
            body.update({"os-vol-tenant-attr:tenant_id": volume.project_id,
                         "os-vol-host-attr:host": "cinder@lvm#lvm", "os-vol-mig-status-attr:migstat": None,
                         "os-vol-mig-status-attr:name_id": None})
        if version >= (3, 13):
            body["group_id"] = None
        if version >= (3, 21):
            body["provider_id"] = None
        if version >= (3, 48):
            body.update({"service_uuid": None, "shared_targets": False})
        if version >= (3, 61) and token.is_admin:
            body["cluster_name"] = None
        if version >= (3, 63):
            body["volume_type_id"] = "00000000-0000-4000-8000-000000000001"
        if version >= (3, 65):
            body["consumes_quota"] = True
        return body

    def _page(self, request: Request, detail: bool) -> Response:
        token = self._token(request)
        version = self.microversion(request)
        effective = page_limit(request, self.sim.max_limit)
        page, _ = paginate(self._filtered(request, token), request.arg("marker"), effective)
        body: Dict[str, Any] = {"volumes": [self.volume_body(v, version, token, detail) for v in page]}
        if short_page(request):
            body["volumes"] = body["volumes"][: len(page) // 2]
        elif page and len(page) == effective:
            body["volumes_links"] = page_links(self.sim.url + request.path, request, page[-1].id, effective)
        return self.respond(request, body)

    def list_volumes(self, request: Request) -> Response:
        return self._page(request, detail=False)

    def list_volumes_detail(self, request: Request) -> Response:
        return self._page(request, detail=True)

    def get_volume(self, request: Request) -> Response:
        token = self._token(request)
        volume: Optional[SimVolume] = self.data.volumes.get(request.match["id"])
        if volume is None or volume.deleted or (not token.is_reader and volume.project_id != token.project_id):
            raise ApiError(404, f"Volume {request.match['id']} could not be found.")
        return self.respond(request, {"volume": self.volume_body(volume, self.microversion(request), token)})

    def quota(self, request: Request) -> Response:
        self._token(request)
        target = request.match["target"]
        return self.respond(request, {"quota_set": {"id": target, "volumes": 10, "gigabytes": 1000, "snapshots": 10,
                                                    "backups": 10, "backup_gigabytes": 1000, "per_volume_gigabytes": -1,
                                                    "groups": 10}})
