"""An ARGO Messaging Service (AMS) simulator: the publish API and the x509 token exchange, over HTTPS.

Speaks what the real service speaks, driven through ``requests``:

* ``POST /v1/projects/<project>/topics/<topic>:publish`` with ``x-api-key`` (or ``?key=``),
  body ``{"messages":[{"attributes":{...},"data":"<base64>"}]}`` ->
  ``{"messageIds":["1","2"]}``;
* ``GET /v1/service-types/ams/hosts/<host>:authx509`` with a client certificate ->
  ``{"token": "..."}`` for a known certificate DN;
* errors as AMS writes them, ``{"error":{"code":N,"message":"...","status":"..."}}``:
  401 UNAUTHORIZED (no or unknown token), 403 FORBIDDEN (token of another project),
  404 NOT_FOUND (unknown topic), 400 INVALID_ARGUMENT (bad JSON or base64),
  413 INVALID_ARGUMENT "Message size is too large" (request or one message over the limit);
  5xx, delays and dropped connections come from :class:`~fedcloud_site.testing.http.Fault`.

Published messages are kept per topic (decoded) for the tests to compare.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Union

from .http import Request, Response, SimServer, json_response

DEFAULT_LIMIT = 1_000_000


@dataclass
class Published:
    id: str
    attributes: Dict[str, str]
    data: bytes


@dataclass
class AmsState:
    """Projects, topics, tokens and what was published."""

    topics: Dict[str, Set[str]] = field(default_factory=dict)  # project -> topics
    tokens: Dict[str, str] = field(default_factory=dict)  # token -> project
    cert_tokens: Dict[str, str] = field(default_factory=dict)  # client certificate DN (slash form) -> token
    published: Dict[str, List[Published]] = field(default_factory=dict)  # "project/topic" -> messages
    max_request_bytes: int = DEFAULT_LIMIT
    max_message_bytes: int = DEFAULT_LIMIT  # base64 data of one message
    next_id: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)


def _error(code: int, status: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message, "status": status}}, code)


def _slash_dn(peer: Optional[Dict[str, Any]]) -> Optional[str]:
    if not peer or "subject" not in peer:
        return None
    names = {"countryName": "C", "organizationName": "O", "organizationalUnitName": "OU", "commonName": "CN",
             "domainComponent": "DC", "localityName": "L", "stateOrProvinceName": "ST", "emailAddress": "emailAddress"}
    parts = []
    for rdn in peer["subject"]:
        for key, value in rdn:
            parts.append(f"/{names.get(key, key)}={value}")
    return "".join(parts)


class AmsSimulator:
    """The simulator: ``start()`` it, point an AMS client at :attr:`url`, inspect :attr:`state`."""

    def __init__(self, cert_file: Optional[Union[str, Path]] = None, key_file: Optional[Union[str, Path]] = None,
                 client_ca_file: Optional[Union[str, Path]] = None, host: str = "127.0.0.1") -> None:
        context = None
        if cert_file is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
            if client_ca_file is not None:
                context.load_verify_locations(str(client_ca_file))
                context.verify_mode = ssl.CERT_OPTIONAL
        self.state = AmsState()
        self.server = SimServer(host=host, ssl_context=context)
        self.server.route("POST", r"/v1/projects/(?P<project>[^/]+)/topics/(?P<topic>[^/:]+):publish", "publish",
                          self._publish)
        self.server.route("GET", r"/v1/service-types/ams/hosts/(?P<host>[^/:]+):authx509", "authx509",
                          self._authx509)

    # -- set-up ------------------------------------------------------------------------------------
    def add_topic(self, project: str, topic: str) -> None:
        self.state.topics.setdefault(project, set()).add(topic)

    def add_token(self, token: str, project: str) -> None:
        self.state.tokens[token] = project

    def add_certificate(self, dn: str, token: str) -> None:
        """Certificates with subject ``dn`` get ``token`` from the authx509 exchange."""
        self.state.cert_tokens[dn] = token

    def messages(self, project: str, topic: str) -> List[Published]:
        with self.state.lock:
            return list(self.state.published.get(f"{project}/{topic}", []))

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> AmsSimulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> AmsSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers ----------------------------------------------------------------------------------
    def _authx509(self, request: Request) -> Response:
        dn = _slash_dn(request.client_cert)
        if dn is None:
            return _error(401, "UNAUTHORIZED", "Unauthorized")
        token = self.state.cert_tokens.get(dn)
        if token is None:
            return _error(403, "FORBIDDEN", f"Access to this resource is forbidden: no binding for {dn}")
        return json_response({"token": token})

    def _publish(self, request: Request) -> Response:
        state = self.state
        project, topic = request.match.group("project"), request.match.group("topic")
        headers = {k.lower(): v for k, v in request.headers.items()}
        token = headers.get("x-api-key") or request.arg("key")
        if not token or token not in state.tokens:
            return _error(401, "UNAUTHORIZED", "Unauthorized")
        if state.tokens[token] != project:
            return _error(403, "FORBIDDEN", "Access to this resource is forbidden")
        if topic not in state.topics.get(project, set()):
            return _error(404, "NOT_FOUND", "Topic doesn't exist")
        if len(request.body) > state.max_request_bytes:
            return _error(413, "INVALID_ARGUMENT", "Message size is too large")
        try:
            payload = json.loads(request.body)
            items = payload["messages"]
            if not isinstance(items, list) or not items:
                raise ValueError("no messages")
        except (ValueError, KeyError, TypeError):
            return _error(400, "INVALID_ARGUMENT", "Invalid Message Arguments")
        decoded = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("data"), str):
                return _error(400, "INVALID_ARGUMENT", "Invalid Message Arguments")
            if len(item["data"]) > state.max_message_bytes:
                return _error(413, "INVALID_ARGUMENT", "Message size is too large")
            try:
                data = base64.b64decode(item["data"], validate=True)
            except (binascii.Error, ValueError):
                return _error(400, "INVALID_ARGUMENT", "Invalid Message Arguments")
            attributes = item.get("attributes") or {}
            if not isinstance(attributes, dict):
                return _error(400, "INVALID_ARGUMENT", "Invalid Message Arguments")
            decoded.append((attributes, data))
        ids = []
        with state.lock:
            stored = state.published.setdefault(f"{project}/{topic}", [])
            for attributes, data in decoded:
                message_id = str(state.next_id)
                state.next_id += 1
                stored.append(Published(message_id, {str(k): str(v) for k, v in attributes.items()}, data))
                ids.append(message_id)
        return json_response({"messageIds": ids})


__all__ = ["AmsSimulator", "AmsState", "Published", "DEFAULT_LIMIT"]
