"""A small threaded HTTP(S) server base for the protocol simulators.

:class:`LoopbackServer` (start/stop of a threaded server on a loopback address) and
:class:`LoopbackHandler` are the base of every test server; :class:`SimServer` adds routing.
Simulators register routes ``(method, regex) -> handler(request) -> Response``.
The server counts requests per route name (for benchmarks) and can inject
faults: an HTTP status, a delay, a dropped connection or a truncated body, for
the next N requests matching a route name (or any route).  It binds to
127.0.0.1 (or ::1) only, on an ephemeral port unless one is given.

Request bodies may come with ``Content-Length`` or ``Transfer-Encoding:
chunked``.  A route registered with ``stream=True`` gets the body as a readable
``request.stream`` instead of ``request.body`` (large uploads), and a handler may
answer with ``Response(stream=<iterable of bytes>)`` (sent chunked unless it sets
``Content-Length``).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import (
    Any,
    BinaryIO,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Mapping,
    Optional,
    Pattern,
    Protocol,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
)
from urllib.parse import parse_qs, urlsplit

LOOPBACK = ("127.0.0.1", "::1")


class LoopbackHandler(BaseHTTPRequestHandler):
    """The request handler base of the test servers: HTTP/1.1 keep-alive, no Nagle delay, no access log."""

    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK stall every keep-alive request by ~40 ms
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access log
        return

    def cut_connection(self) -> None:
        """Close the connection now, without (the rest of) an answer: a dropped or truncated response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


ServerT = TypeVar("ServerT", bound="LoopbackServer")


class LoopbackServer:
    """A threaded HTTP(S) server on a loopback address, serving from a daemon thread: start/stop (also as a
    context manager) and its URL.  The base of the test servers; a subclass gives :meth:`handler_class`."""

    #: name of the serving thread (``<name>-<port>``)
    thread_name = "test-server"
    #: listen backlog
    request_queue_size = 64

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        if host not in LOOPBACK:
            raise ValueError("test servers only listen on loopback addresses")
        self.host = host
        self.port = port  # the bound port once started (0: an ephemeral one)
        self.ssl_context = ssl_context
        self._lock = threading.Lock()  # for the subclass's counters and faults
        self._httpd: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def handler_class(self) -> Type[BaseHTTPRequestHandler]:
        """The class that answers this server's requests (usually a :class:`LoopbackHandler`)."""
        raise NotImplementedError

    def start(self: ServerT) -> ServerT:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        backlog = self.request_queue_size

        class _Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True
            request_queue_size = backlog

        httpd = _Server((self.host, self.port), self.handler_class())
        if self.ssl_context is not None:
            httpd.socket = self.ssl_context.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        # a short poll interval: stop() (shutdown) returns within 50 ms instead of 0.5 s
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name=f"{self.thread_name}-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self: ServerT) -> ServerT:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def server_ssl_context(cert_file: Union[str, Path], key_file: Optional[Union[str, Path]] = None,
                       client_ca_file: Optional[Union[str, Path]] = None) -> ssl.SSLContext:
    """A TLS server context; with ``client_ca_file`` clients may present a certificate it issued (optional)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    if client_ca_file is not None:
        context.load_verify_locations(cafile=str(client_ca_file))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


#: short names of the subject attributes ``SSLSocket.getpeercert()`` spells out
_DN_SHORT_NAMES = {"domainComponent": "DC", "commonName": "CN", "organizationName": "O",
                   "organizationalUnitName": "OU", "countryName": "C", "localityName": "L",
                   "stateOrProvinceName": "ST", "emailAddress": "emailAddress"}


def peer_dn(cert: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The subject of a client certificate (``Request.client_cert``) in slash form: ``/DC=org/CN=name``."""
    if not cert or not cert.get("subject"):
        return None
    return "".join(f"/{_DN_SHORT_NAMES.get(key, key)}={value}" for rdn in cert["subject"] for key, value in rdn)


class Countdown(Protocol):
    """An injected fault: used for its next ``count`` matching requests."""

    count: int


FaultT = TypeVar("FaultT", bound=Countdown)


def take_fault(faults: List[FaultT], applies: Callable[[FaultT], bool]) -> Optional[FaultT]:
    """The first fault that ``applies`` and has uses left, with one use counted off (removed after its last).

    The caller holds the lock that guards ``faults``.
    """
    for fault in faults:
        if applies(fault) and fault.count > 0:
            fault.count -= 1
            if fault.count == 0:
                faults.remove(fault)
            return fault
    return None


class FaultingServer(LoopbackServer, Generic[FaultT]):
    """A loopback server that fails on purpose: each injected fault serves its next ``count`` requests of one
    name (a route, an XML-RPC method), or of any name."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(host, port, ssl_context)
        self.faults: List[FaultT] = []

    def fault_target(self, fault: FaultT) -> Optional[str]:
        """The request name ``fault`` is for (None: any)."""
        raise NotImplementedError

    def inject(self, fault: FaultT) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, name: str) -> Optional[FaultT]:
        with self._lock:
            return take_fault(self.faults, lambda fault: self.fault_target(fault) in (None, name))


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Mapping[str, str]
    body: bytes
    match: re.Match[str]
    client_cert: Optional[Dict[str, Any]] = None
    stream: Optional[BinaryIO] = None  # the unread body, for routes registered with stream=True
    fault: Optional[Fault] = None  # a fault the handler itself enacts (kinds other than status/delay/drop/truncate)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def arg(self, name: str, default: Optional[str] = None) -> Optional[str]:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Response:
    status: int = 200
    body: Any = b""
    headers: Dict[str, str] = field(default_factory=dict)
    stream: Optional[Iterable[bytes]] = None  # sent instead of ``body`` when set

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        self.headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode("utf-8")


def json_response(body: Any, status: int = 200, headers: Optional[Dict[str, str]] = None) -> Response:
    return Response(status=status, body=body, headers=dict(headers or {}, **{"Content-Type": "application/json"}))


@dataclass
class Fault:
    """An injected failure for the next ``count`` requests matching ``route`` (None = any)."""

    kind: str  # "status", "delay", "drop", "truncate", or a simulator's own kind (see Request.fault)
    route: Optional[str] = None
    count: int = 1
    status: int = 503
    delay: float = 0.0
    body: Any = None


Handler = Callable[[Request], Response]


class SimServer(FaultingServer[Fault]):
    """Route table + request counters + fault injection over a threaded HTTP(S) server."""

    thread_name = "sim"
    request_queue_size = 128

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(host, port, ssl_context)
        self.routes: List[Tuple[str, str, Pattern[str], Handler]] = []
        self.streaming_routes: Set[str] = set()
        self.requests: Counter[str] = Counter()

    # -- configuration -----------------------------------------------------------------------
    def route(self, method: str, pattern: str, name: str, handler: Handler, stream: bool = False) -> None:
        """Serve ``method`` requests whose path matches ``pattern`` (a full-match regex).

        With ``stream`` the handler reads the request body from ``request.stream``.
        """
        self.routes.append((method.upper(), name, re.compile(pattern), handler))
        if stream:
            self.streaming_routes.add(name)

    def fault_target(self, fault: Fault) -> Optional[str]:
        return fault.route

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    # -- serving -------------------------------------------------------------------------------

    def resolve(self, method: str, raw_path: str) -> Tuple[Optional[str], Optional[Handler], Optional[re.Match[str]]]:
        """The route name, handler and path match serving a request (None when no route matches)."""
        path = urlsplit(raw_path).path
        for route_method, name, pattern, handler in self.routes:
            if route_method == method:
                match = pattern.fullmatch(path)
                if match:
                    return name, handler, match
        return None, None, None

    def dispatch(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes,
                 client_cert: Optional[Dict[str, Any]] = None, fault: Optional[Fault] = None,
                 stream: Optional[BinaryIO] = None) -> Response:
        """Count the request, apply a pre-processing fault, else call the route's handler."""
        name, handler, match = self.resolve(method, raw_path)
        if handler is None or match is None or name is None:
            return json_response({"error": {"code": 404, "message": f"no route for {method} {raw_path}"}}, 404)
        with self._lock:
            self.requests[name] += 1
        if fault is not None and fault.kind == "status":
            return json_response(fault.body or {"error": {"code": fault.status, "message": "injected fault"}},
                                 fault.status)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay)
        parts = urlsplit(raw_path)
        request = Request(method, parts.path, parse_qs(parts.query, keep_blank_values=True), headers, body,
                          match, client_cert, stream, fault)
        return handler(request)

    def handler_class(self) -> Type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(LoopbackHandler):
            def _serve(self) -> None:
                name, _, _ = server.resolve(self.command, self.path)
                reader = _BodyReader(self.rfile, self.headers.get("Content-Length"),
                                     "chunked" in (self.headers.get("Transfer-Encoding") or "").lower())
                streaming = name in server.streaming_routes
                body = b"" if streaming else reader.read()
                cert = None
                if isinstance(self.connection, ssl.SSLSocket):
                    cert = self.connection.getpeercert()
                fault = server._take_fault(name) if name else None
                if fault is not None and fault.kind == "drop":
                    with server._lock:
                        server.requests[name or ""] += 1
                    self.cut_connection()
                    return
                response = server.dispatch(self.command, self.path, dict(self.headers.items()), body, cert, fault,
                                           reader if streaming else None)  # type: ignore[arg-type]
                if streaming:
                    reader.drain()
                if response.stream is not None:
                    self._send_stream(response)
                    return
                payload = response.payload()
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault is not None and fault.kind == "truncate":
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.cut_connection()
                    return
                self.wfile.write(payload)

            def _send_stream(self, response: Response) -> None:
                self.send_response(response.status)
                sized = any(key.lower() == "content-length" for key in response.headers)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                if not sized:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if self.command == "HEAD":
                    return
                for chunk in response.stream or ():
                    if not chunk:
                        continue
                    if sized:
                        self.wfile.write(chunk)
                    else:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if not sized:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve  # noqa: N815

        return _Handler


class _BodyReader:
    """A request body as a stream: ``Content-Length`` bytes or a chunked transfer encoding."""

    def __init__(self, rfile: Any, length: Optional[str], chunked: bool) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._left = 0 if chunked else int(length or 0)
        self._done = not chunked and self._left == 0

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024).strip()
        size = int(line.split(b";")[0] or b"0", 16)
        if size == 0:
            while self._rfile.readline(1024).strip():  # trailers
                pass
            self._done = True
        self._left = size

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (all that is left when negative); b"" at its end."""
        parts: List[bytes] = []
        wanted = size
        while not self._done and wanted != 0:
            if self._left == 0:
                if not self._chunked:
                    self._done = True
                    break
                self._next_chunk()
                if self._done:
                    break
            take = self._left if wanted < 0 else min(self._left, wanted)
            data = self._rfile.read(take)
            if not data:
                self._done = True
                break
            parts.append(data)
            self._left -= len(data)
            if wanted > 0:
                wanted -= len(data)
            if self._left == 0:
                if self._chunked:
                    self._rfile.readline(16)  # CRLF after the chunk
                else:
                    self._done = True
        return b"".join(parts)

    def drain(self) -> None:
        """Consume what the handler left unread, so that the connection can serve the next request."""
        while self.read(1 << 16):
            pass
