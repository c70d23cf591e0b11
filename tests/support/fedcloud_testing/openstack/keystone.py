"""Simulated Keystone v3: version discovery, tokens with catalog, projects, users, domains, roles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from fedcloud_site.demo.http import Request, Response, json_response

from .common import TITLES, ApiError, Service, Token, iso_micro_z
from .model import KEYSTONE_USER_OPTIONS, SimAssignment, SimProject, SimUser

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import OpenStackSim

VERSION = "v3.14"
MEDIA_TYPES = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
#: user attributes with their own meaning; everything else is kept as a custom attribute
USER_FIELDS = {"id", "name", "domain_id", "enabled", "password", "email", "description", "default_project_id",
               "options", "links", "password_expires_at", "federated"}
PROJECT_FIELDS = {"id", "name", "domain_id", "enabled", "description", "parent_id", "is_domain", "tags", "options",
                  "links"}


def render_error(exc: ApiError) -> Response:
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="http://127.0.0.1"'
    return json_response({"error": {"code": exc.status, "message": exc.message,
                                    "title": TITLES.get(exc.status, "Error")}}, exc.status, headers)


def register(sim: OpenStackSim) -> None:
    api = _Keystone(sim)
    r = sim.add_route
    r("GET", r"/", "keystone.versions", api.versions, render_error)
    r("GET", r"/v3/?", "keystone.version", api.version, render_error)
    r("POST", r"/v3/auth/tokens", "keystone.auth.tokens.issue", api.issue, render_error)
    r("GET", r"/v3/auth/tokens", "keystone.auth.tokens.validate", api.validate, render_error)
    r("HEAD", r"/v3/auth/tokens", "keystone.auth.tokens.check", api.validate, render_error)
    r("DELETE", r"/v3/auth/tokens", "keystone.auth.tokens.revoke", api.revoke, render_error)
    r("GET", r"/v3/auth/catalog", "keystone.auth.catalog", api.catalog, render_error)
    r("GET", r"/v3/auth/projects", "keystone.auth.projects", api.auth_projects, render_error)
    r("GET", r"/v3/auth/system", "keystone.auth.system", api.auth_system, render_error)
    r("GET", r"/v3/projects", "keystone.projects", api.list_projects, render_error)
    r("GET", r"/v3/projects/(?P<id>[^/]+)", "keystone.project", api.get_project, render_error)
    r("GET", r"/v3/projects/(?P<id>[^/]+)/tags", "keystone.project.tags", api.project_tags, render_error)
    r("GET", r"/v3/domains", "keystone.domains", api.list_domains, render_error)
    r("GET", r"/v3/domains/(?P<id>[^/]+)", "keystone.domain", api.get_domain, render_error)
    r("GET", r"/v3/users", "keystone.users", api.list_users, render_error)
    r("POST", r"/v3/users", "keystone.users.create", api.create_user, render_error)
    r("GET", r"/v3/users/(?P<id>[^/]+)", "keystone.user", api.get_user, render_error)
    r("PATCH", r"/v3/users/(?P<id>[^/]+)", "keystone.user.update", api.update_user, render_error)
    r("DELETE", r"/v3/users/(?P<id>[^/]+)", "keystone.user.delete", api.delete_user, render_error)
    r("GET", r"/v3/users/(?P<id>[^/]+)/projects", "keystone.user.projects", api.user_projects, render_error)
    r("GET", r"/v3/roles", "keystone.roles", api.list_roles, render_error)
    r("GET", r"/v3/role_assignments", "keystone.role_assignments", api.role_assignments, render_error)
    grant = r"/v3/(?P<kind>projects|domains)/(?P<scope>[^/]+)/users/(?P<user>[^/]+)/roles/(?P<role>[^/]+)"
    r("PUT", grant, "keystone.grant.put", api.put_grant, render_error)
    r("HEAD", grant, "keystone.grant.check", api.check_grant, render_error)
    r("GET", grant, "keystone.grant.check", api.check_grant, render_error)
    r("DELETE", grant, "keystone.grant.delete", api.delete_grant, render_error)
    r("GET", r"/v3/(?P<kind>projects|domains)/(?P<scope>[^/]+)/users/(?P<user>[^/]+)/roles",
      "keystone.grants", api.list_grants, render_error)
    system_grant = r"/v3/system/users/(?P<user>[^/]+)/roles/(?P<role>[^/]+)"
    r("PUT", system_grant, "keystone.system_grant.put", api.put_system_grant, render_error)
    r("DELETE", system_grant, "keystone.system_grant.delete", api.delete_system_grant, render_error)


class _Keystone(Service):
    # -- discovery --------------------------------------------------------------------------------------
    def _version_doc(self) -> Dict[str, Any]:
        return {"id": VERSION, "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": self.sim.url + "/v3/"}], "media-types": MEDIA_TYPES}

    def versions(self, request: Request) -> Response:
        return json_response({"versions": {"values": [self._version_doc()]}}, 300,
                             {"Location": self.sim.url + "/v3/"})

    def version(self, request: Request) -> Response:
        return json_response({"version": self._version_doc()})

    # -- tokens -------------------------------------------------------------------------------------------
    def _domain_ref(self, ref: Dict[str, Any]) -> str:
        domain = self.data.find_domain(str(ref.get("id") or ref.get("name") or ""))
        if domain is None:
            raise ApiError(401, "The request you have made requires authentication.")
        return domain.id

    def _user_ref(self, ref: Dict[str, Any]) -> SimUser:
        user: Optional[SimUser]
        if "id" in ref:
            user = self.data.users.get(str(ref["id"]))
        else:
            domain_id = self._domain_ref(ref.get("domain") or {})
            user = self.data.find_user(str(ref.get("name")), domain_id)
            if user is not None and user.domain_id != domain_id:
                user = None
        if user is None:
            raise ApiError(401, "The request you have made requires authentication.")
        return user

    def issue(self, request: Request) -> Response:
        body = request.json() or {}
        auth = body.get("auth") or {}
        identity = auth.get("identity") or {}
        methods = list(identity.get("methods") or [])
        if not methods:
            raise ApiError(400, "Expecting to find identity in auth. The server could not comply with the request "
                                "since it is either malformed or otherwise incorrect.")
        scope_ref = auth.get("scope")
        app_cred_id = None
        extras: Dict[str, Any] = {}
        if "application_credential" in methods:
            ref = identity.get("application_credential") or {}
            cred = self.data.app_credentials.get(str(ref.get("id"))) if ref.get("id") else next(
                (c for c in self.data.app_credentials.values() if c.name == ref.get("name")), None)
            if cred is None or cred.secret != ref.get("secret"):
                raise ApiError(401, "The request you have made requires authentication.")
            if scope_ref:
                raise ApiError(401, "Application credentials cannot request a scope.")
            user = self.data.users[cred.user_id]
            scope: Optional[Tuple[str, str]] = ("project", cred.project_id)
            app_cred_id = cred.id
            extras["application_credential"] = {"id": cred.id, "name": cred.name, "restricted": True}
        elif "password" in methods:
            ref = (identity.get("password") or {}).get("user") or {}
            user = self._user_ref(ref)
            if user.password is None or user.password != ref.get("password"):
                raise ApiError(401, "The request you have made requires authentication.")
            scope = self._scope(scope_ref, user)
        elif "token" in methods:
            old = self.sim.tokens.get(str((identity.get("token") or {}).get("id")))
            if old is None:
                raise ApiError(404, "Could not find token.")
            user = old.user
            scope = self._scope(scope_ref, user) if scope_ref else old.scope
        else:
            raise ApiError(401, f"Unsupported authentication method {methods[0]}")
        if not user.enabled:
            raise ApiError(401, "The request you have made requires authentication.")
        roles = self.data.user_roles(user.id, scope[0], scope[1]) if scope else []
        if scope and not roles:
            raise ApiError(401, f"User {user.id} has no access to {scope[0]} {scope[1]}")
        if scope and scope[0] == "project" and not self.data.projects[scope[1]].enabled:
            raise ApiError(401, f"Project {scope[1]} is disabled")
        token = self.sim.issue_token(user=user, methods=methods, scope=scope, roles=roles,
                                     app_credential_id=app_cred_id, extras=extras)
        no_catalog = "nocatalog" in request.query
        return json_response({"token": self._token_body(token, catalog=not no_catalog)}, 201,
                             {"X-Subject-Token": token.id})

    def _scope(self, ref: Any, user: SimUser) -> Optional[Tuple[str, str]]:
        if ref == "unscoped":
            return None
        if not ref:
            if user.default_project_id and self.data.user_roles(user.id, "project", user.default_project_id):
                return ("project", user.default_project_id)
            return None
        if "system" in ref:
            return ("system", "all")
        if "domain" in ref:
            return ("domain", self._domain_ref(ref["domain"]))
        if "project" in ref:
            pref = ref["project"]
            if "id" in pref:
                project = self.data.projects.get(str(pref["id"]))
            else:
                domain_id = self._domain_ref(pref.get("domain") or {})
                project = self.data.find_project(str(pref.get("name")), domain_id)
            if project is None:
                raise ApiError(401, f"Could not find project: {pref.get('id') or pref.get('name')}.")
            return ("project", project.id)
        raise ApiError(400, "Invalid scope")

    def _catalog(self, token: Token) -> List[Dict[str, Any]]:
        region = self.data.region
        entries = []
        services = [("identity", "keystone"), ("compute", "nova"), ("image", "glance"), ("network", "neutron"),
                    ("block-storage", "cinder"), ("volumev3", "cinderv3"), ("placement", "placement")]
        for service_type, name in services:
            url = self.sim.endpoint("block-storage" if service_type == "volumev3" else service_type,
                                    token.project_id)
            endpoints = [{"id": self.data._uuid_hex(f"{service_type}-{interface}"), "interface": interface,
                          "region": region, "region_id": region, "url": url}
                         for interface in ("public", "internal", "admin")]
            entries.append({"type": service_type, "name": name, "id": self.data._uuid_hex(service_type),
                            "endpoints": endpoints})
        return entries

    def _token_body(self, token: Token, catalog: bool = True) -> Dict[str, Any]:
        user = token.user
        domain = self.data.domains.get(user.domain_id)
        body: Dict[str, Any] = {
            "methods": token.methods,
            "user": {"id": user.id, "name": user.name, "password_expires_at": None,
                     "domain": {"id": user.domain_id, "name": domain.name if domain else user.domain_id}},
            "audit_ids": [token.audit_id],
            "expires_at": iso_micro_z(token.expires_at),
            "issued_at": iso_micro_z(token.issued_at),
        }
        if token.scope is not None:
            kind, scope_id = token.scope
            if kind == "project":
                project = self.data.projects[scope_id]
                pdomain = self.data.domains.get(project.domain_id)
                body["project"] = {"id": project.id, "name": project.name,
                                   "domain": {"id": project.domain_id,
                                              "name": pdomain.name if pdomain else project.domain_id}}
                body["is_domain"] = False
            elif kind == "domain":
                body["domain"] = {"id": scope_id, "name": self.data.domains[scope_id].name}
            else:
                body["system"] = {"all": True}
            body["roles"] = [{"id": r.id, "name": r.name} for r in token.roles]
            if catalog:
                body["catalog"] = self._catalog(token)
        body.update(token.extras)
        return body

    def validate(self, request: Request) -> Response:
        self.sim.token_of(request)
        subject = request.headers.get("X-Subject-Token") or request.headers.get("x-subject-token") or ""
        token = self.sim.tokens.get(subject)
        if token is None:
            raise ApiError(404, f"Could not find token: {subject}.")
        return json_response({"token": self._token_body(token, catalog="nocatalog" not in request.query)}, 200,
                             {"X-Subject-Token": token.id})

    def revoke(self, request: Request) -> Response:
        self.sim.token_of(request)
        subject = request.headers.get("X-Subject-Token") or ""
        if self.sim.tokens.pop(subject, None) is None:
            raise ApiError(404, f"Could not find token: {subject}.")
        return Response(204)

    def catalog(self, request: Request) -> Response:
        token = self.sim.token_of(request)
        assert token is not None
        return json_response({"catalog": self._catalog(token), "links": self._links("/v3/auth/catalog")})

    def auth_system(self, request: Request) -> Response:
        token = self.sim.token_of(request)
        assert token is not None
        has = bool(self.data.user_roles(token.user.id, "system", "all"))
        return json_response({"system": [{"all": True}] if has else [], "links": self._links("/v3/auth/system")})

    # -- helpers ------------------------------------------------------------------------------------------
    def _links(self, path: str) -> Dict[str, Any]:
        return {"self": self.sim.url + path, "previous": None, "next": None}

    def _admin(self, request: Request, action: str) -> Token:
        token = self.sim.token_of(request)
        assert token is not None
        if not token.is_reader:
            raise ApiError(403, f"You are not authorized to perform the requested action: identity:{action}.")
        return token

    def _writer(self, request: Request, action: str) -> Token:
        token = self.sim.token_of(request)
        assert token is not None
        if not token.is_admin:
            raise ApiError(403, f"You are not authorized to perform the requested action: identity:{action}.")
        return token

    def _limited(self, key: str, items: List[Dict[str, Any]], path: str) -> Response:
        body: Dict[str, Any] = {key: items, "links": self._links(path)}
        limit = self.sim.keystone_list_limit
        if limit is not None and len(items) > limit:
            body[key] = items[:limit]
            body["truncated"] = True
        return json_response(body)

    # -- projects and domains -------------------------------------------------------------------------------
    def _project_body(self, project: SimProject) -> Dict[str, Any]:
        body: Dict[str, Any] = dict(project.extra)
        body.update({"id": project.id, "name": project.name, "domain_id": project.domain_id,
                     "description": project.description, "enabled": project.enabled,
                     "parent_id": project.parent_id or project.domain_id, "is_domain": False,
                     "tags": list(project.tags), "options": {},
                     "links": {"self": f"{self.sim.url}/v3/projects/{project.id}"}})
        return body

    def list_projects(self, request: Request) -> Response:
        self._admin(request, "list_projects")
        return self._limited("projects", [self._project_body(p) for p in self._filter_projects(request)],
                             "/v3/projects")

    def _filter_projects(self, request: Request) -> List[SimProject]:
        def tag_set(name: str) -> Optional[set]:
            value = request.arg(name)
            return set(value.split(",")) if value else None

        tags_all, tags_any = tag_set("tags"), tag_set("tags-any")
        not_all, not_any = tag_set("not-tags"), tag_set("not-tags-any")
        enabled = request.arg("enabled")
        found = []
        for project in self.data.projects.values():
            tags = set(project.tags)
            if request.arg("name") is not None and project.name != request.arg("name"):
                continue
            if request.arg("domain_id") is not None and project.domain_id != request.arg("domain_id"):
                continue
            if request.arg("parent_id") is not None and (project.parent_id or project.domain_id) != request.arg(
                    "parent_id"):
                continue
            if enabled is not None and project.enabled != (enabled.lower() not in ("0", "false", "no")):
                continue
            if (request.arg("is_domain") or "false").lower() == "true":
                continue
            if tags_all is not None and not tags_all <= tags:
                continue
            if tags_any is not None and not tags_any & tags:
                continue
            if not_all is not None and not_all <= tags:
                continue
            if not_any is not None and not_any & tags:
                continue
            found.append(project)
        return found

    def get_project(self, request: Request) -> Response:
        token = self.sim.token_of(request)
        assert token is not None
        project = self.data.projects.get(request.match["id"])
        if project is None:
            raise ApiError(404, f"Could not find project: {request.match['id']}.")
        if not token.is_reader and token.project_id != project.id:
            raise ApiError(403, "You are not authorized to perform the requested action: identity:get_project.")
        return json_response({"project": self._project_body(project)})

    def project_tags(self, request: Request) -> Response:
        self.sim.token_of(request)
        project = self.data.projects.get(request.match["id"])
        if project is None:
            raise ApiError(404, f"Could not find project: {request.match['id']}.")
        return json_response({"tags": list(project.tags)})

    def _user_project_list(self, user_id: str, path: str) -> Response:
        ids = {a.scope_id for a in self.data.assignments if a.user_id == user_id and a.scope == "project"}
        return json_response({"projects": [self._project_body(p) for p in self.data.projects.values()
                                           if p.id in ids and p.enabled], "links": self._links(path)})

    def auth_projects(self, request: Request) -> Response:
        token = self.sim.token_of(request)
        assert token is not None
        return self._user_project_list(token.user.id, "/v3/auth/projects")

    def user_projects(self, request: Request) -> Response:
        token = self.sim.token_of(request)
        assert token is not None
        if not token.is_reader and token.user.id != request.match["id"]:
            raise ApiError(403, "You are not authorized to perform the requested action: "
                                "identity:list_user_projects.")
        return self._user_project_list(request.match["id"], f"/v3/users/{request.match['id']}/projects")

    def list_domains(self, request: Request) -> Response:
        self._admin(request, "list_domains")
        domains = [d for d in self.data.domains.values()
                   if request.arg("name") is None or d.name == request.arg("name")]
        return json_response({"domains": [self._domain_body(d.id) for d in domains], "links": self._links(
            "/v3/domains")})

    def _domain_body(self, domain_id: str) -> Dict[str, Any]:
        d = self.data.domains[domain_id]
        return {"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled, "tags": [],
                "options": {}, "links": {"self": f"{self.sim.url}/v3/domains/{d.id}"}}

    def get_domain(self, request: Request) -> Response:
        """Keystone's default policy: system readers, and tokens scoped to the domain or to a project in it."""
        token = self.sim.token_of(request)
        assert token is not None
        domain_id = request.match["id"]
        project = self.data.projects.get(token.project_id or "")
        if not (token.is_reader or token.scope == ("domain", domain_id)
                or (project is not None and project.domain_id == domain_id)):
            raise ApiError(403, "You are not authorized to perform the requested action: identity:get_domain.")
        if domain_id not in self.data.domains:
            raise ApiError(404, f"Could not find domain: {domain_id}.")
        return json_response({"domain": self._domain_body(domain_id)})

    # -- users -------------------------------------------------------------------------------------------------
    def _user_body(self, user: SimUser) -> Dict[str, Any]:
        body: Dict[str, Any] = dict(user.extra)
        body.update({"id": user.id, "name": user.name, "domain_id": user.domain_id, "enabled": user.enabled,
                     "password_expires_at": None, "options": dict(user.options),
                     "links": {"self": f"{self.sim.url}/v3/users/{user.id}"}})
        for key in ("email", "description", "default_project_id"):
            if getattr(user, key) is not None:
                body[key] = getattr(user, key)
        return body

    def list_users(self, request: Request) -> Response:
        self._admin(request, "list_users")
        enabled = request.arg("enabled")
        users = []
        for user in self.data.users.values():
            if request.arg("name") is not None and user.name != request.arg("name"):
                continue
            if request.arg("domain_id") is not None and user.domain_id != request.arg("domain_id"):
                continue
            if enabled is not None and user.enabled != (enabled.lower() not in ("0", "false", "no")):
                continue
            users.append(self._user_body(user))
        return self._limited("users", users, "/v3/users")

    def _user(self, user_id: str) -> SimUser:
        user = self.data.users.get(user_id)
        if user is None:
            raise ApiError(404, f"Could not find user: {user_id}.")
        return user

    def get_user(self, request: Request) -> Response:
        token = self.sim.token_of(request)
        assert token is not None
        if not token.is_reader and token.user.id != request.match["id"]:
            raise ApiError(403, "You are not authorized to perform the requested action: identity:get_user.")
        return json_response({"user": self._user_body(self._user(request.match["id"]))})

    @staticmethod
    def _check_options(options: Any) -> Dict[str, Any]:
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise ApiError(400, "Invalid input for field 'options': not an object")
        for key in options:
            if key not in KEYSTONE_USER_OPTIONS:
                raise ApiError(400, f"Invalid input for field 'options': Additional properties are not allowed "
                                    f"('{key}' was unexpected)")
        return dict(options)

    def create_user(self, request: Request) -> Response:
        self._writer(request, "create_user")
        ref = (request.json() or {}).get("user")
        if not isinstance(ref, dict) or not ref.get("name"):
            raise ApiError(400, "Invalid input for field 'name': 'name' is a required property")
        domain_id = str(ref.get("domain_id") or "default")
        if domain_id not in self.data.domains:
            raise ApiError(400, f"Could not find domain: {domain_id}.")
        if any(u.name == ref["name"] and u.domain_id == domain_id for u in self.data.users.values()):
            raise ApiError(409, f"Conflict occurred attempting to store user - Duplicate entry found with name "
                                f"{ref['name']} at domain ID {domain_id}.")
        if "enabled" in ref and not isinstance(ref["enabled"], bool):
            raise ApiError(400, "Invalid input for field 'enabled': not a boolean")
        options = self._check_options(ref.get("options"))
        user_id = self.data.new_id("user").replace("-", "")
        user = SimUser(id=user_id, name=str(ref["name"]), domain_id=domain_id, enabled=ref.get("enabled", True),
                       password=ref.get("password"), email=ref.get("email"), description=ref.get("description"),
                       default_project_id=ref.get("default_project_id"), options=options,
                       extra={k: v for k, v in ref.items() if k not in USER_FIELDS})
        self.data.users[user.id] = user
        self.data.touch()
        return json_response({"user": self._user_body(user)}, 201)

    def update_user(self, request: Request) -> Response:
        self._writer(request, "update_user")
        user = self._user(request.match["id"])
        ref = (request.json() or {}).get("user")
        if not isinstance(ref, dict):
            raise ApiError(400, "Invalid input for field 'user': not an object")
        if "id" in ref and ref["id"] != user.id:
            raise ApiError(400, "Cannot change user ID")
        if "enabled" in ref and not isinstance(ref["enabled"], bool):
            raise ApiError(400, "Invalid input for field 'enabled': not a boolean")
        if "options" in ref:
            merged = dict(user.options)
            for key, value in self._check_options(ref["options"]).items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            user.options = merged
        for key, value in ref.items():
            if key in ("id", "options", "links", "password_expires_at"):
                continue
            if key in ("name", "domain_id", "enabled", "password", "email", "description", "default_project_id"):
                setattr(user, key, value)
            else:
                user.extra[key] = value
        self.data.touch()
        return json_response({"user": self._user_body(user)})

    def delete_user(self, request: Request) -> Response:
        self._writer(request, "delete_user")
        user = self._user(request.match["id"])
        del self.data.users[user.id]
        self.data.assignments = {a for a in self.data.assignments if a.user_id != user.id}
        for token_id, token in list(self.sim.tokens.items()):
            if token.user.id == user.id:
                self.sim.tokens.pop(token_id, None)
        self.data.touch()
        return Response(204)

    # -- roles ---------------------------------------------------------------------------------------------------
    def list_roles(self, request: Request) -> Response:
        self.sim.token_of(request)
        roles = [r for r in self.data.roles.values() if request.arg("name") is None or r.name == request.arg("name")]
        return json_response({"roles": [{"id": r.id, "name": r.name, "domain_id": None, "description": None,
                                         "options": {}, "links": {"self": f"{self.sim.url}/v3/roles/{r.id}"}}
                                        for r in roles], "links": self._links("/v3/roles")})

    def role_assignments(self, request: Request) -> Response:
        self._admin(request, "list_role_assignments")
        names = "include_names" in request.query and request.arg("include_names", "true") not in ("0", "false")
        found = []
        for a in sorted(self.data.assignments, key=lambda a: (a.user_id, a.scope, a.scope_id, a.role_id)):
            if request.arg("user.id") is not None and a.user_id != request.arg("user.id"):
                continue
            if request.arg("role.id") is not None and a.role_id != request.arg("role.id"):
                continue
            if request.arg("scope.project.id") is not None and (a.scope != "project" or a.scope_id != request.arg(
                    "scope.project.id")):
                continue
            if request.arg("scope.domain.id") is not None and (a.scope != "domain" or a.scope_id != request.arg(
                    "scope.domain.id")):
                continue
            if request.arg("scope.system") is not None and a.scope != "system":
                continue
            if "group.id" in request.query:
                continue
            found.append(self._assignment_body(a, names))
        return json_response({"role_assignments": found, "links": self._links("/v3/role_assignments")})

    def _assignment_body(self, a: SimAssignment, names: bool) -> Dict[str, Any]:
        role = next((r for r in self.data.roles.values() if r.id == a.role_id), None)
        user = self.data.users.get(a.user_id)
        body: Dict[str, Any] = {"role": {"id": a.role_id}, "user": {"id": a.user_id}}
        if a.scope == "system":
            body["scope"] = {"system": {"all": True}}
            link = f"/v3/system/users/{a.user_id}/roles/{a.role_id}"
        else:
            body["scope"] = {a.scope: {"id": a.scope_id}}
            link = f"/v3/{a.scope}s/{a.scope_id}/users/{a.user_id}/roles/{a.role_id}"
        body["links"] = {"assignment": self.sim.url + link}
        if names:
            if role is not None:
                body["role"]["name"] = role.name
            if user is not None:
                domain = self.data.domains.get(user.domain_id)
                body["user"].update({"name": user.name, "domain": {"id": user.domain_id,
                                                                   "name": domain.name if domain else ""}})
            if a.scope == "project" and a.scope_id in self.data.projects:
                project = self.data.projects[a.scope_id]
                body["scope"]["project"].update({"name": project.name, "domain": {"id": project.domain_id}})
        return body

    def _grant_target(self, request: Request) -> SimAssignment:
        kind = "project" if request.match["kind"] == "projects" else "domain"
        scope_id = request.match["scope"]
        if (kind == "project" and scope_id not in self.data.projects) or (
                kind == "domain" and scope_id not in self.data.domains):
            raise ApiError(404, f"Could not find {kind}: {scope_id}.")
        self._user(request.match["user"])
        role_id = request.match["role"]
        if not any(r.id == role_id for r in self.data.roles.values()):
            raise ApiError(404, f"Could not find role: {role_id}.")
        return SimAssignment(request.match["user"], kind, scope_id, role_id)

    def put_grant(self, request: Request) -> Response:
        self._writer(request, "create_grant")
        self.data.assignments.add(self._grant_target(request))
        self.data.touch()
        return Response(204)

    def check_grant(self, request: Request) -> Response:
        self._admin(request, "check_grant")
        if self._grant_target(request) not in self.data.assignments:
            raise ApiError(404, "Could not find role assignment.")
        return Response(204)

    def delete_grant(self, request: Request) -> Response:
        self._writer(request, "revoke_grant")
        target = self._grant_target(request)
        if target not in self.data.assignments:
            raise ApiError(404, "Could not find role assignment.")
        self.data.assignments.discard(target)
        self.data.touch()
        return Response(204)

    def list_grants(self, request: Request) -> Response:
        self._admin(request, "list_grants")
        kind = "project" if request.match["kind"] == "projects" else "domain"
        roles = self.data.user_roles(request.match["user"], kind, request.match["scope"])
        return json_response({"roles": [{"id": r.id, "name": r.name, "domain_id": None} for r in roles],
                              "links": self._links(request.path)})

    def put_system_grant(self, request: Request) -> Response:
        self._writer(request, "create_system_grant_for_user")
        self._user(request.match["user"])
        self.data.assignments.add(SimAssignment(request.match["user"], "system", "all", request.match["role"]))
        return Response(204)

    def delete_system_grant(self, request: Request) -> Response:
        self._writer(request, "revoke_system_grant_for_user")
        self.data.assignments.discard(SimAssignment(request.match["user"], "system", "all", request.match["role"]))
        return Response(204)
