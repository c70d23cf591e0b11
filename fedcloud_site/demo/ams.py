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
  5xx, delays and dropped connections come from :class:`~fedcloud_site.demo.http.Fault`.

Published messages are kept per topic (decoded) for the tests to compare and, when ``store_dir`` is given,
also written there as files: ``<project>/<topic>/<id>.msg`` (the decoded data) and ``<id>.json`` (the
attributes).

Stand-alone (the offline demo, ``scripts/demo.sh``)::

    python3 -m fedcloud_site.demo.ams --port 18443 --cert servercert.pem --key serverkey.pem \
        --token TOKEN --project accounting --topic eu-egi-cloud-accounting --store DIR \
        [--client-ca ca.pem --bind-cert hostcert.pem]

serves on 127.0.0.1 until SIGTERM or SIGINT; ``--bind-cert`` makes the authx509 exchange hand out TOKEN
for that certificate's subject (its client certificate is checked against ``--client-ca``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import signal
import ssl
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Union

from cryptography import x509

from .ca import slash_dn
from .http import Request, Response, SimServer, json_response, peer_dn, server_ssl_context

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


class AmsSimulator:
    """The simulator: ``start()`` it, point an AMS client at :attr:`url`, inspect :attr:`state`."""

    def __init__(self, cert_file: Optional[Union[str, Path]] = None, key_file: Optional[Union[str, Path]] = None,
                 client_ca_file: Optional[Union[str, Path]] = None, host: str = "127.0.0.1", port: int = 0,
                 store_dir: Optional[Union[str, Path]] = None) -> None:
        context = server_ssl_context(cert_file, key_file, client_ca_file) if cert_file is not None else None
        self.state = AmsState()
        self.store_dir = Path(store_dir) if store_dir is not None else None
        self.server = SimServer(host=host, port=port, ssl_context=context)
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
        dn = peer_dn(request.client_cert)
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
                message = Published(message_id, {str(k): str(v) for k, v in attributes.items()}, data)
                stored.append(message)
                ids.append(message_id)
                if self.store_dir is not None:
                    self._store(project, topic, message)
        return json_response({"messageIds": ids})

    def _store(self, project: str, topic: str, message: Published) -> None:
        """Write one published message under :attr:`store_dir` (data first, so a ``.json`` means complete)."""
        assert self.store_dir is not None
        directory = self.store_dir / project / topic
        directory.mkdir(parents=True, exist_ok=True)
        _write_then_rename(directory / f"{int(message.id):06d}.msg", message.data)
        _write_then_rename(directory / f"{int(message.id):06d}.json",
                           (json.dumps({"id": message.id, "attributes": message.attributes}, indent=1) + "\n").encode())


def _write_then_rename(path: Path, data: bytes) -> None:
    """Readers see the whole file or none of it."""
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


def main(argv: Optional[List[str]] = None) -> int:
    """Serve the simulator on 127.0.0.1 until SIGTERM/SIGINT (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python3 -m fedcloud_site.demo.ams",
                                     description="A local ARGO Messaging Service simulator (HTTPS, 127.0.0.1).")
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--cert", type=Path, required=True, help="server certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="server private key (PEM)")
    parser.add_argument("--token", required=True, help="the token accepted for --project")
    parser.add_argument("--project", default="accounting", help="AMS project (default: accounting)")
    parser.add_argument("--topic", action="append", required=True, help="a topic of the project (repeatable)")
    parser.add_argument("--store", type=Path, required=True, help="directory to write published messages into")
    parser.add_argument("--client-ca", type=Path, help="CA certificate (PEM) that client certificates must verify "
                                                       "against (for the authx509 exchange)")
    parser.add_argument("--bind-cert", type=Path, action="append", default=[],
                        help="a client certificate (PEM) whose subject gets --token from authx509 (repeatable)")
    args = parser.parse_args(argv)
    try:
        subjects = [slash_dn(x509.load_pem_x509_certificate(path.read_bytes()).subject) for path in args.bind_cert]
        sim = AmsSimulator(args.cert, args.key, client_ca_file=args.client_ca, port=args.port, store_dir=args.store)
        for topic in args.topic:
            sim.add_topic(args.project, topic)
        sim.add_token(args.token, args.project)
        for subject in subjects:
            sim.add_certificate(subject, args.token)
        args.store.mkdir(parents=True, exist_ok=True)
        sim.start()
    except (OSError, ssl.SSLError, ValueError) as exc:
        print(f"ams_sim: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"ams_sim: serving {sim.url} (project {args.project}, topics {', '.join(args.topic)}), "
          f"storing into {args.store}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        sim.stop()
    return 0


__all__ = ["AmsSimulator", "AmsState", "Published", "DEFAULT_LIMIT", "main"]


if __name__ == "__main__":
    sys.exit(main())
