"""Simulated Glance v2: images with paging, filters, upload/download, JSON-patch, members, tags."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from fedcloud_site.demo.http import Request, Response, json_response

from .common import (
    ApiError,
    Service,
    Token,
    iso_z,
    page_limit,
    paginate,
    short_page,
    unauthorized,
)
from .glance_schema import SCHEMAS, check_image_value
from .model import SimImage, SimImageMember

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import OpenStackSim

PATCH_MEDIA_TYPE = "application/openstack-images-v2.1-json-patch"
DEFAULT_LIMIT = 25
#: image attributes with their own meaning; other keys are custom properties
CORE_ATTRS = {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
              "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk", "disk_format",
              "container_format", "created_at", "updated_at", "tags", "self", "file", "schema", "direct_url",
              "locations", "stores"}
READ_ONLY = {"id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size", "created_at",
             "updated_at", "self", "file", "schema", "direct_url", "stores"}
DISK_FORMATS = {"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
CONTAINER_FORMATS = {"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
VISIBILITIES = {"public", "private", "shared", "community"}
STATUS_NAMES = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                409: "Conflict", 413: "Request Entity Too Large", 415: "Unsupported Media Type"}


def render_error(exc: ApiError) -> Response:
    """Glance answers errors as a short text/html page (webob)."""
    if exc.status == 401:
        return unauthorized(exc)
    title = STATUS_NAMES.get(exc.status, "Error")
    text = f"<html>\n <head>\n  <title>{exc.status} {title}</title>\n </head>\n <body>\n  <h1>{exc.status} {title}" \
           f"</h1>\n  {exc.message}<br /><br />\n\n\n\n </body>\n</html>"
    return Response(exc.status, text, {"Content-Type": "text/html; charset=UTF-8"})


def register(sim: OpenStackSim) -> None:
    api = _Glance(sim)
    r = sim.add_route
    image = r"/image/v2/images/(?P<id>[^/]+)"
    r("GET", r"/image/?", "glance.versions", api.versions, render_error)
    r("GET", r"/image/versions", "glance.versions", api.versions, render_error)
    r("GET", r"/image/v2/?", "glance.versions", api.versions, render_error)
    r("GET", r"/image/v2/images", "glance.images", api.list_images, render_error)
    r("POST", r"/image/v2/images", "glance.images.create", api.create_image, render_error)
    r("GET", image, "glance.image", api.get_image, render_error)
    r("PATCH", image, "glance.image.update", api.patch_image, render_error)
    r("DELETE", image, "glance.image.delete", api.delete_image, render_error)
    r("PUT", image + r"/file", "glance.image.upload", api.upload, render_error, stream=True)
    r("GET", image + r"/file", "glance.image.download", api.download, render_error, stream=True)
    r("POST", image + r"/actions/deactivate", "glance.image.deactivate", api.deactivate, render_error)
    r("POST", image + r"/actions/reactivate", "glance.image.reactivate", api.reactivate, render_error)
    r("GET", image + r"/members", "glance.members", api.list_members, render_error)
    r("POST", image + r"/members", "glance.members.create", api.add_member, render_error)
    r("GET", image + r"/members/(?P<member>[^/]+)", "glance.member", api.get_member, render_error)
    r("PUT", image + r"/members/(?P<member>[^/]+)", "glance.member.update", api.update_member, render_error)
    r("DELETE", image + r"/members/(?P<member>[^/]+)", "glance.member.delete", api.delete_member, render_error)
    r("PUT", image + r"/tags/(?P<tag>[^/]+)", "glance.tag.add", api.add_tag, render_error)
    r("DELETE", image + r"/tags/(?P<tag>[^/]+)", "glance.tag.delete", api.delete_tag, render_error)
    r("GET", r"/image/v2/schemas/(?P<name>image|images|member|members)", "glance.schema", api.schema, render_error)
    r("GET", r"/image/v2/info/import", "glance.info.import", api.import_info, render_error)
    r("GET", r"/image/v2/info/stores", "glance.info.stores", api.stores_info, render_error)


class _Glance(Service):
    # -- discovery ---------------------------------------------------------------------------------------------
    def versions(self, request: Request) -> Response:
        versions = [{"id": f"v2.{minor}", "status": "CURRENT" if minor == 16 else "SUPPORTED",
                     "links": [{"rel": "self", "href": self.sim.url + "/image/v2/"}]}
                    for minor in range(16, -1, -1)]
        return json_response({"versions": versions}, 300)

    def schema(self, request: Request) -> Response:
        self._token(request)
        return json_response(SCHEMAS[request.match["name"]]())

    def import_info(self, request: Request) -> Response:
        self._token(request)
        return json_response({"import-methods": {"description": "Import methods available.", "type": "array",
                                                 "value": ["glance-direct", "web-download"]}})

    def stores_info(self, request: Request) -> Response:
        raise ApiError(404, "Multi backend is not supported at this site.")

    # -- access ---------------------------------------------------------------------------------------------------
    def _visible(self, image: SimImage, token: Token) -> bool:
        if token.is_admin:
            return True
        if image.owner == token.project_id or image.visibility in ("public", "community"):
            return True
        member = image.members.get(token.project_id or "")
        return image.visibility == "shared" and member is not None

    def _image(self, image_id: str, token: Token) -> SimImage:
        image = self.data.images.get(image_id)
        if image is None or image.status == "deleted" or not self._visible(image, token):
            raise ApiError(404, f"No image found with ID {image_id}")
        return image

    def _owned(self, image: SimImage, token: Token) -> None:
        if not token.is_admin and image.owner != token.project_id:
            raise ApiError(403, "You are not permitted to modify this image.")

    def image_body(self, image: SimImage) -> Dict[str, Any]:
        body: Dict[str, Any] = dict(image.properties)
        body.update({
            "id": image.id, "name": image.name, "status": image.status, "visibility": image.visibility,
            "protected": image.protected, "os_hidden": image.os_hidden, "checksum": image.checksum,
            "os_hash_algo": image.os_hash_algo, "os_hash_value": image.os_hash_value, "owner": image.owner,
            "size": image.size, "virtual_size": image.virtual_size, "min_ram": image.min_ram,
            "min_disk": image.min_disk, "disk_format": image.disk_format,
            "container_format": image.container_format, "created_at": iso_z(image.created_at),
            "updated_at": iso_z(image.updated_at), "tags": list(image.tags),
            "self": f"/v2/images/{image.id}", "file": f"/v2/images/{image.id}/file", "schema": "/v2/schemas/image",
        })
        return body

    # -- listing -----------------------------------------------------------------------------------------------------
    def list_images(self, request: Request) -> Response:
        token = self._token(request)
        limit = page_limit(request, self.sim.max_limit, DEFAULT_LIMIT)
        images = self._filtered(request, token)
        marker = request.arg("marker")
        if marker is not None and marker not in self.data.images:
            raise ApiError(400, f"marker [{marker}] not found")
        page, more = paginate(images, marker, limit)
        body: Dict[str, Any] = {"images": [self.image_body(i) for i in page], "first": "/v2/images",
                                "schema": "/v2/schemas/images"}
        if short_page(request):
            body["images"] = body["images"][: len(page) // 2]
        elif page and len(page) == limit:
            from urllib.parse import urlencode

            params = [(k, v) for k, values in request.query.items() if k not in ("marker", "limit") for v in values]
            params += [("marker", page[-1].id), ("limit", str(limit))]
            body["next"] = "/v2/images?" + urlencode(params)
        del more
        return json_response(body)

    def _filtered(self, request: Request, token: Token) -> List[SimImage]:
        sort_key = request.arg("sort_key", "created_at")
        sort_dir = request.arg("sort_dir", "desc")
        if sort_key not in ("created_at", "updated_at", "name", "id", "size", "status", "owner", "visibility",
                            "disk_format", "container_format", "min_ram", "min_disk"):
            raise ApiError(400, f"Unsupported sort_key. Acceptable values: ... ({sort_key})")
        if sort_dir not in ("asc", "desc"):
            raise ApiError(400, f"Unsupported sort_dir. Acceptable values: asc, desc ({sort_dir})")
        images = sorted(self.data.images.values(),
                        key=lambda i: (getattr(i, sort_key) is not None, getattr(i, sort_key) or 0, i.id)
                        if sort_key != "id" else (True, i.id, i.id), reverse=sort_dir == "desc")
        visibility = request.arg("visibility")
        if visibility is not None and visibility not in VISIBILITIES | {"all"}:
            raise ApiError(400, f"Invalid visibility value: {visibility}")
        member_status = request.arg("member_status") or "accepted"
        hidden = (request.arg("os_hidden", "false") or "false").lower() == "true"
        tags = request.query.get("tag", [])
        special = {"limit", "marker", "sort_key", "sort_dir", "sort", "visibility", "member_status", "os_hidden",
                   "tag", "owner", "status", "name", "disk_format", "container_format", "id", "protected",
                   "size_min", "size_max", "created_at", "updated_at"}
        props = {k: v[-1] for k, v in request.query.items() if k not in special}
        found = []
        for image in images:
            if image.status == "deleted" or image.os_hidden != hidden:
                continue
            if not self._listed(image, token, visibility, member_status):
                continue
            if request.arg("owner") is not None and image.owner != request.arg("owner"):
                continue
            if request.arg("status") is not None and image.status != request.arg("status"):
                continue
            if request.arg("name") is not None and image.name != request.arg("name"):
                continue
            for attr in ("disk_format", "container_format", "id"):
                if request.arg(attr) is not None and getattr(image, attr) != request.arg(attr):
                    break
            else:
                if request.arg("protected") is not None and str(image.protected).lower() != request.arg(
                        "protected", "").lower():  # type: ignore[union-attr]
                    continue
                if tags and not set(tags) <= set(image.tags):
                    continue
                if any(str(image.properties.get(k)) != v for k, v in props.items()):
                    continue
                found.append(image)
        return found

    def _listed(self, image: SimImage, token: Token, visibility: Optional[str], member_status: str) -> bool:
        if visibility not in (None, "all") and image.visibility != visibility:
            return False
        if token.is_admin:  # the admin lists every image, whoever owns it
            return True
        own = image.owner == token.project_id
        if image.visibility == "public" or own:
            return True
        if image.visibility == "community":
            return visibility == "community"
        member = image.members.get(token.project_id or "")
        if image.visibility == "shared" and member is not None:
            return member_status == "all" or member.status == member_status
        return False

    def get_image(self, request: Request) -> Response:
        token = self._token(request)
        return json_response(self.image_body(self._image(request.match["id"], token)))

    # -- create, update, delete ------------------------------------------------------------------------------------
    def _check_value(self, key: str, value: Any) -> None:
        if key == "visibility" and value not in VISIBILITIES:
            raise ApiError(400, f"Invalid visibility value: {value}")
        if key == "disk_format" and value is not None and value not in DISK_FORMATS:
            raise ApiError(400, f"Invalid value '{value}' for parameter 'disk_format': ...")
        if key == "container_format" and value is not None and value not in CONTAINER_FORMATS:
            raise ApiError(400, f"Invalid value '{value}' for parameter 'container_format': ...")
        if key in ("min_ram", "min_disk") and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ApiError(400, f"Invalid value for {key}: {value!r}")
        if key in ("protected", "os_hidden") and not isinstance(value, bool):
            raise ApiError(400, f"Invalid value for {key}: {value!r} is not of type 'boolean'")
        problem = check_image_value(key, value)
        if problem is not None:
            raise ApiError(400, problem)

    def create_image(self, request: Request) -> Response:
        token = self._token(request)
        ref = request.json()
        if not isinstance(ref, dict):
            raise ApiError(400, "Request body must be a JSON object")
        for key in ref:
            if key in READ_ONLY and key != "id":
                raise ApiError(403, f"Attribute '{key}' is read-only.")
        for key, value in ref.items():
            self._check_value(key, value)
        visibility = ref.get("visibility", "shared")
        if visibility == "public" and not token.is_admin:
            raise ApiError(403, 'You are not authorized to complete publicize_image action.')
        owner = ref.get("owner", token.project_id)
        if owner != token.project_id and not token.is_admin:
            raise ApiError(403, "You are not permitted to create images owned by another project.")
        image_id = ref.get("id") or self.data.new_id("image")
        if image_id in self.data.images:
            raise ApiError(409, f"Image with identifier {image_id} already exists!")
        props = {k: v for k, v in ref.items() if k not in CORE_ATTRS}
        image = self.data.add_image(ref.get("name"), owner, id=image_id, status="queued", visibility=visibility,
                                    protected=ref.get("protected", False), os_hidden=ref.get("os_hidden", False),
                                    disk_format=ref.get("disk_format"), container_format=ref.get("container_format"),
                                    min_ram=ref.get("min_ram", 0), min_disk=ref.get("min_disk", 0),
                                    tags=list(ref.get("tags") or []), properties=props)
        return json_response(self.image_body(image), 201, {"Location": f"{self.sim.url}/image/v2/images/{image.id}"})

    def patch_image(self, request: Request) -> Response:
        token = self._token(request)
        content_type = (request.headers.get("Content-Type") or request.headers.get("content-type") or "").split(";")[0]
        if content_type.strip() != PATCH_MEDIA_TYPE:
            raise ApiError(415, f"Unsupported Content-Type: {content_type}; use {PATCH_MEDIA_TYPE}")
        image = self._image(request.match["id"], token)
        self._owned(image, token)
        ops = request.json()
        if not isinstance(ops, list):
            raise ApiError(400, "Request body must be a JSON array of operation objects.")
        changes: Dict[str, Any] = {}
        removed: List[str] = []
        current = self.image_body(image)
        for op in ops:
            if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove") or "path" not in op:
                raise ApiError(400, "Operation objects must contain exactly one member named \"add\", \"remove\", "
                                    "or \"replace\".")
            path = str(op["path"])
            if not path.startswith("/") or path.count("/") != 1:
                raise ApiError(400, f"Invalid JSON pointer for this resource: '{path}'")
            key = path[1:]
            if key in READ_ONLY:
                raise ApiError(403, f"Attribute '{key}' is read-only.")
            if key in ("owner",) and not token.is_admin:
                raise ApiError(403, "Attribute 'owner' is reserved.")
            if op["op"] == "remove":
                if key in CORE_ATTRS:
                    raise ApiError(403, f"Attribute '{key}' is reserved.")
                if key not in image.properties and key not in changes:
                    raise ApiError(409, f"Property {key} does not exist.")
                changes.pop(key, None)
                removed.append(key)
                continue
            if "value" not in op:
                raise ApiError(400, "Operation \"add\" requires a member named \"value\".")
            if op["op"] == "replace" and key not in current and key not in changes:
                raise ApiError(409, f"Property {key} does not exist.")
            self._check_value(key, op["value"])
            if key == "visibility" and op["value"] == "public" and not token.is_admin:
                raise ApiError(403, 'You are not authorized to complete publicize_image action.')
            changes[key] = op["value"]
        for key in removed:
            image.properties.pop(key, None)
        for key, value in changes.items():
            if key in CORE_ATTRS:
                setattr(image, key, list(value) if key == "tags" else value)
            else:
                image.properties[key] = value
        image.updated_at = self.data.now()
        self.data.touch()
        return json_response(self.image_body(image))

    def delete_image(self, request: Request) -> Response:
        token = self._token(request)
        image = self._image(request.match["id"], token)
        self._owned(image, token)
        if image.protected:
            raise ApiError(403, f"Image {image.id} is protected and cannot be deleted.")
        del self.data.images[image.id]
        if image.data_path:
            try:
                os.unlink(image.data_path)
            except OSError:
                pass
        self.data.touch()
        return Response(204)

    # -- data ------------------------------------------------------------------------------------------------------
    def upload(self, request: Request) -> Response:
        token = self._token(request)
        with self.data.lock:
            image = self._image(request.match["id"], token)
            self._owned(image, token)
            if image.status != "queued":
                raise ApiError(409, f"Image status transition from {image.status} to saving is not allowed")
            if image.disk_format is None or image.container_format is None:
                raise ApiError(400, "Properties disk_format, container_format must be set prior to saving data.")
            image.status = "saving"
        assert self.sim.image_dir is not None and request.stream is not None
        path = os.path.join(self.sim.image_dir, image.id)
        md5 = hashlib.md5(usedforsecurity=False)
        sha512 = hashlib.sha512()
        size = 0
        try:
            with open(path, "wb") as handle:
                while True:
                    chunk = request.stream.read(1 << 16)
                    if not chunk:
                        break
                    md5.update(chunk)
                    sha512.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
        except OSError as exc:
            with self.data.lock:
                image.status = "queued"
            raise ApiError(400, f"upload failed: {exc}") from None
        with self.data.lock:
            image.data_path, image.size, image.virtual_size = path, size, None
            image.checksum, image.os_hash_algo, image.os_hash_value = md5.hexdigest(), "sha512", sha512.hexdigest()
            image.status = "active"
            image.updated_at = self.data.now()
            self.data.touch()
        return Response(204)

    def download(self, request: Request) -> Response:
        from .simulator import iter_file

        token = self._token(request)
        with self.data.lock:
            image = self._image(request.match["id"], token)
            if image.status == "deactivated" and not token.is_admin:
                raise ApiError(403, "The requested image has been deactivated. Image data download is forbidden.")
            if image.data_path is None:
                return Response(204)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(image.size),
                       "Content-MD5": image.checksum or ""}
            path = image.data_path
        return Response(200, b"", headers, stream=iter_file(path))

    def _set_status(self, request: Request, active: bool) -> Response:
        token = self._token(request)
        image = self._image(request.match["id"], token)
        if not token.is_admin:
            raise ApiError(403, "You are not authorized to complete deactivate action.")
        if image.status not in ("active", "deactivated"):
            raise ApiError(403, f"Not allowed to {'re' if active else 'de'}activate image in status '{image.status}'")
        image.status = "active" if active else "deactivated"
        image.updated_at = self.data.now()
        self.data.touch()
        return Response(204)

    def deactivate(self, request: Request) -> Response:
        return self._set_status(request, False)

    def reactivate(self, request: Request) -> Response:
        return self._set_status(request, True)

    # -- members and tags ------------------------------------------------------------------------------------------
    def _member_body(self, image: SimImage, member: SimImageMember) -> Dict[str, Any]:
        return {"created_at": iso_z(member.created_at), "updated_at": iso_z(member.updated_at),
                "image_id": image.id, "member_id": member.member_id, "status": member.status,
                "schema": "/v2/schemas/member"}

    def list_members(self, request: Request) -> Response:
        token = self._token(request)
        image = self._image(request.match["id"], token)
        if image.visibility != "shared":
            raise ApiError(403, "Only shared images have members.")
        members = [m for m in image.members.values()
                   if token.is_admin or image.owner == token.project_id or m.member_id == token.project_id]
        return json_response({"members": [self._member_body(image, m) for m in members],
                              "schema": "/v2/schemas/members"})

    def add_member(self, request: Request) -> Response:
        token = self._token(request)
        image = self._image(request.match["id"], token)
        self._owned(image, token)
        if image.visibility != "shared":
            raise ApiError(403, f"Image {image.id} is not shared: only shared images can have members.")
        member_id = str((request.json() or {}).get("member") or "")
        if not member_id:
            raise ApiError(400, "Member to be added not specified")
        if member_id in image.members:
            raise ApiError(409, f"Member {member_id} already exists for image {image.id}")
        now = self.data.now()
        member = SimImageMember(member_id, "pending", now, now)
        image.members[member_id] = member
        self.data.touch()
        return json_response(self._member_body(image, member))

    def _member(self, request: Request, token: Token) -> tuple:
        image = self._image(request.match["id"], token)
        member = image.members.get(request.match["member"])
        if member is None:
            raise ApiError(404, f"Member {request.match['member']} not found for image {image.id}")
        return image, member

    def get_member(self, request: Request) -> Response:
        token = self._token(request)
        image, member = self._member(request, token)
        return json_response(self._member_body(image, member))

    def update_member(self, request: Request) -> Response:
        token = self._token(request)
        image, member = self._member(request, token)
        if not token.is_admin and token.project_id != member.member_id:
            raise ApiError(403, "You are not permitted to modify 'status' on this image member.")
        status = (request.json() or {}).get("status")
        if status not in ("pending", "accepted", "rejected"):
            raise ApiError(400, f"Invalid status: {status}")
        member.status, member.updated_at = status, self.data.now()
        self.data.touch()
        return json_response(self._member_body(image, member))

    def delete_member(self, request: Request) -> Response:
        token = self._token(request)
        image, member = self._member(request, token)
        self._owned(image, token)
        del image.members[member.member_id]
        self.data.touch()
        return Response(204)

    def add_tag(self, request: Request) -> Response:
        token = self._token(request)
        image = self._image(request.match["id"], token)
        self._owned(image, token)
        if request.match["tag"] not in image.tags:
            image.tags.append(request.match["tag"])
            image.updated_at = self.data.now()
            self.data.touch()
        return Response(204)

    def delete_tag(self, request: Request) -> Response:
        token = self._token(request)
        image = self._image(request.match["id"], token)
        self._owned(image, token)
        if request.match["tag"] not in image.tags:
            raise ApiError(404, f"Tag {request.match['tag']} not found")
        image.tags.remove(request.match["tag"])
        image.updated_at = self.data.now()
        self.data.touch()
        return Response(204)
