"""The OpenStack simulator: one loopback HTTP server speaking Keystone v3, Nova v2.1, Glance v2,
Neutron v2.0 and Cinder v3 over a :class:`~.model.CloudData`.

Services live under per-service path prefixes of the same server, as in a
devstack: Keystone at ``/`` (``/v3``), Nova at ``/compute/v2.1``, Glance at
``/image``, Neutron at ``/network``, Cinder at ``/volume/v3``, Placement at
``/placement``.  The token's catalog points at them.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterator, Optional

from fedcloud_site.demo.http import Fault, Request, Response, SimServer

from . import cinder, glance, keystone, neutron, nova, placement
from .common import ApiError, Token
from .dataset import ADMIN_PASSWORD, ADMIN_PROJECT, ADMIN_USER, add_admin
from .model import CloudData

ErrorRenderer = Callable[[ApiError], Response]
ApiHandler = Callable[[Request], Response]

#: service types with their path prefix on the simulator
SERVICE_PREFIXES = {
    "identity": "",
    "compute": "/compute",
    "image": "/image",
    "network": "/network",
    "block-storage": "/volume",
    "placement": "/placement",
}


class OpenStackSim:
    """A simulated OpenStack cloud on 127.0.0.1 (or ::1); use as a context manager.

    With ``ssl_context`` it serves HTTPS (its catalog then points at https URLs).
    ``sim.auth`` holds admin credentials for openstacksdk/keystoneauth;
    ``sim.requests`` counts requests per endpoint name (``nova.servers.detail``...);
    :meth:`inject`, :meth:`expire_tokens`, :meth:`short_pages` inject faults.
    """

    def __init__(self, data: Optional[CloudData] = None, host: str = "127.0.0.1", port: int = 0,
                 nova_max_version: str = "2.96", max_limit: int = 1000, token_ttl: float = 3600.0,
                 keystone_list_limit: Optional[int] = None, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        self.data = data if data is not None else CloudData()
        add_admin(self.data)
        self.server = SimServer(host=host, port=port, ssl_context=ssl_context)
        self.nova_max_version = nova_max_version
        self.max_limit = max_limit  # Nova osapi_max_limit, Glance api_limit_max, Neutron/Cinder page cap
        self.token_ttl = token_ttl
        self.keystone_list_limit = keystone_list_limit
        self.tokens: Dict[str, Token] = {}
        self._lock = threading.Lock()
        self.image_dir: Optional[str] = None
        for module in (keystone, nova, glance, neutron, cinder, placement):
            module.register(self)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> OpenStackSim:
        self.image_dir = tempfile.mkdtemp(prefix="ossim-images-")
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        if self.image_dir is not None:
            shutil.rmtree(self.image_dir, ignore_errors=True)
            self.image_dir = None

    def __enter__(self) -> OpenStackSim:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- addresses and credentials ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def auth_url(self) -> str:
        """Keystone v3 endpoint."""
        return self.url + "/v3"

    def endpoint(self, service_type: str, project_id: Optional[str] = None) -> str:
        """The catalog URL of a service."""
        base = self.url + SERVICE_PREFIXES[service_type]
        if service_type == "identity":
            return base + "/v3"
        if service_type == "compute":
            return base + "/v2.1"
        if service_type == "block-storage":
            return base + "/v3" + (f"/{project_id}" if project_id else "")
        return base

    @property
    def auth(self) -> Dict[str, str]:
        """Admin password credentials, project-scoped on ``admin`` (keystoneauth option names)."""
        return {"auth_url": self.auth_url, "username": ADMIN_USER, "password": ADMIN_PASSWORD,
                "project_name": ADMIN_PROJECT, "user_domain_name": "Default", "project_domain_name": "Default"}

    def connect(self, **overrides: Any) -> Any:
        """An ``openstack.connection.Connection`` as the admin (for tests)."""
        import openstack.connection

        kwargs: Dict[str, Any] = dict(self.auth, region_name=self.data.region)
        kwargs.update(overrides)
        return openstack.connection.Connection(**kwargs)

    # -- counters and faults -----------------------------------------------------------------------
    @property
    def requests(self) -> Dict[str, int]:
        return dict(self.server.requests)

    @property
    def total_requests(self) -> int:
        return self.server.total_requests

    def reset_counts(self) -> None:
        self.server.reset_counts()

    def inject(self, kind: str = "status", route: Optional[str] = None, count: int = 1, status: int = 503,
               delay: float = 0.0, body: Any = None) -> None:
        """Fail the next ``count`` requests to ``route`` (a request-counter name; None = any).

        Kinds: ``status`` (answer ``status``), ``delay`` (sleep ``delay`` s first), ``drop``
        (close the connection), ``truncate`` (cut the body in half), ``short_page`` (a list
        answers with half its page and no next link, as if the listing had ended).
        """
        self.server.inject(Fault(kind=kind, route=route, count=count, status=status, delay=delay, body=body))

    def short_pages(self, route: str, count: int = 1) -> None:
        self.inject("short_page", route=route, count=count)

    def clear_faults(self) -> None:
        self.server.clear_faults()

    def expire_tokens(self) -> None:
        """Revoke every issued token: the next request of each client gets 401 and must re-authenticate."""
        with self._lock:
            self.tokens.clear()

    # -- tokens --------------------------------------------------------------------------------------
    def issue_token(self, **kwargs: Any) -> Token:
        now = datetime.now(timezone.utc)
        token = Token(id="gAAAAA" + secrets.token_urlsafe(48), issued_at=now,
                      expires_at=now + timedelta(seconds=self.token_ttl), audit_id=secrets.token_urlsafe(16)[:22],
                      **kwargs)
        with self._lock:
            self.tokens[token.id] = token
        return token

    def token_of(self, request: Request, required: bool = True) -> Optional[Token]:
        """The caller's valid token (401 when missing, unknown, expired or revoked)."""
        value = request.headers.get("X-Auth-Token") or request.headers.get("x-auth-token")
        if not value:
            if required:
                raise ApiError(401, "The request you have made requires authentication.")
            return None
        with self._lock:
            token = self.tokens.get(value)
        if token is None or token.expires_at <= datetime.now(timezone.utc) or not token.user.enabled:
            raise ApiError(401, "The request you have made requires authentication.")
        return token

    # -- routing ---------------------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, name: str, handler: ApiHandler, render: ErrorRenderer,
                  stream: bool = False) -> None:
        """Register a handler whose :class:`ApiError` answers are rendered by ``render``."""

        def wrapped(request: Request) -> Response:
            try:
                if stream:  # long transfers: the handler locks around its record updates
                    return handler(request)
                with self.data.lock:
                    return handler(request)
            except ApiError as exc:
                return render(exc)

        self.server.route(method, pattern, name, wrapped, stream=stream)


def iter_file(path: str, chunk: int = 1 << 16) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            data = handle.read(chunk)
            if not data:
                return
            yield data
