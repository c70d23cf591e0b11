"""A static file server for image lists and images, on 127.0.0.1, for tests and benchmarks.

Unlike :class:`~fedcloud_site.demo.http.SimServer` it streams files (``sendfile``) of any size and speaks
the parts of HTTP a subscriber depends on: ``Range`` (206 / 416), ``ETag`` / ``Last-Modified`` with
``If-None-Match`` / ``If-Modified-Since`` (304), optional basic auth. Faults for the next N requests of a
path: drop the connection after some bytes, serve wrong bytes, throttle, answer a status, ignore ``Range``.
Every request is recorded (path, method, headers, status).
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import time
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Dict, List, Optional, Type, Union

from fedcloud_site.demo.http import LoopbackHandler, LoopbackServer, take_fault

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Fault:
    """Applied to the next ``count`` GETs of a path."""

    kind: str  # "drop" (after ``after`` bytes), "corrupt", "throttle" (``rate`` bytes/s), "status", "no-range"
    count: int = 1
    after: int = 0
    rate: int = 0
    status: int = 503


@dataclass
class Seen:
    method: str
    path: str
    headers: Dict[str, str]
    status: int = 0


@dataclass
class _Item:
    path: Path
    etag: str
    mtime: float
    faults: List[Fault] = field(default_factory=list)


class ImageServer(LoopbackServer):
    """Serve files under URL paths; ``put`` adds or replaces one (new ETag/Last-Modified)."""

    thread_name = "image-server"

    def __init__(self, host: str = "127.0.0.1", ssl_context: Optional[ssl.SSLContext] = None,
                 token: Optional[str] = None) -> None:
        super().__init__(host, 0, ssl_context)
        self.token = token
        self.items: Dict[str, _Item] = {}
        self.seen: List[Seen] = []
        self.active = 0  # bodies being sent right now
        self.max_active = 0  # the most sent at once

    def put(self, url_path: str, source: Union[Path, bytes], directory: Optional[Path] = None) -> str:
        """Serve ``source`` (a file, or bytes written to ``directory``) at ``url_path``; returns its URL."""
        if isinstance(source, bytes):
            if directory is None:
                raise ValueError("bytes need a directory to be stored in")
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / url_path.strip("/").replace("/", "_")
            target.write_bytes(source)
            source = target
        stat = source.stat()
        etag = '"' + hashlib.sha1(f"{source}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:16] + '"'
        with self._lock:
            old = self.items.get(url_path)
            mtime = stat.st_mtime if old is None or stat.st_mtime > old.mtime else old.mtime + 1
            self.items[url_path] = _Item(source, etag, mtime, old.faults if old else [])
        return self.url + url_path

    def remove(self, url_path: str) -> None:
        with self._lock:
            self.items.pop(url_path, None)

    def inject(self, url_path: str, fault: Fault) -> None:
        with self._lock:
            self.items[url_path].faults.append(fault)

    def requests_for(self, url_path: str) -> List[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == url_path]

    def _take_fault(self, item: _Item) -> Optional[Fault]:
        with self._lock:
            return take_fault(item.faults, lambda fault: True)

    def handler_class(self) -> Type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(LoopbackHandler):
            def _finish(self, seen: Seen, status: int, headers: Dict[str, str], body: bytes = b"") -> None:
                seen.status = status
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                seen = Seen(self.command, self.path.split("?")[0], dict(self.headers.items()))
                with server._lock:
                    server.seen.append(seen)
                    item = server.items.get(seen.path)
                if server.token is not None:
                    expected = "Basic " + base64.b64encode(f"{server.token}:x-oauth-basic".encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        self._finish(seen, 401, {"WWW-Authenticate": 'Basic realm="images"'})
                        return
                if item is None:
                    self._finish(seen, 404, {})
                    return
                fault = server._take_fault(item) if self.command == "GET" else None
                if fault is not None and fault.kind == "status":
                    self._finish(seen, fault.status, {})
                    return
                size = item.path.stat().st_size
                validators = {"ETag": item.etag, "Last-Modified": formatdate(item.mtime, usegmt=True),
                              "Accept-Ranges": "bytes"}
                if self._not_modified(item):
                    self._finish(seen, 304, validators)
                    return
                start, end = 0, size - 1
                status = 200
                wanted = self.headers.get("Range")
                if wanted and not (fault is not None and fault.kind == "no-range"):
                    match = _RANGE.match(wanted.strip())
                    if not match or int(match.group(1)) >= size:
                        self._finish(seen, 416, {"Content-Range": f"bytes */{size}"})
                        return
                    start = int(match.group(1))
                    end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                    status = 206
                    validators["Content-Range"] = f"bytes {start}-{end}/{size}"
                length = end - start + 1
                seen.status = status
                self.send_response(status)
                for key, value in validators.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command == "HEAD":
                    return
                self.wfile.flush()
                with server._lock:
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    self._send_body(item.path, start, length, fault)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, ValueError):
                    self.close_connection = True
                finally:
                    with server._lock:
                        server.active -= 1

            do_HEAD = do_GET  # noqa: N815

            def _not_modified(self, item: _Item) -> bool:
                if_none = self.headers.get("If-None-Match")
                if if_none is not None:
                    return if_none.strip() == item.etag
                since = self.headers.get("If-Modified-Since")
                if since:
                    try:
                        return parsedate_to_datetime(since).timestamp() >= int(item.mtime)
                    except (TypeError, ValueError):
                        return False
                return False

            def _send_body(self, path: Path, start: int, length: int, fault: Optional[Fault]) -> None:
                with open(path, "rb") as source:
                    if fault is None and server.ssl_context is None:
                        self.connection.sendfile(source, offset=start, count=length)
                        return
                    source.seek(start)
                    sent = 0
                    limit = fault.after if fault is not None and fault.kind == "drop" else length
                    throttled = fault is not None and fault.kind == "throttle" and fault.rate > 0
                    step = max(fault.rate // 20, 1) if fault is not None and throttled else 256 * 1024
                    while sent < min(length, limit):
                        chunk = source.read(min(step, min(length, limit) - sent))
                        if not chunk:
                            break
                        if fault is not None and fault.kind == "corrupt" and sent == 0:
                            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                        if fault is not None and throttled:
                            time.sleep(len(chunk) / fault.rate)
                        self.wfile.write(chunk)
                        sent += len(chunk)
                    if sent < length:  # "drop": cut the connection mid-body
                        self.wfile.flush()
                        self.cut_connection()

        return _Handler


def write_random_file(path: Path, size: int, seed: int = 0) -> str:
    """A file of ``size`` pseudo-random bytes (streamed, constant memory); returns its sha512 hex."""
    digest = hashlib.sha512()
    block = hashlib.shake_256(f"fedcloud-site-{seed}".encode()).digest(1 << 20)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        remaining = size
        counter = 0
        while remaining > 0:
            chunk = block if remaining >= len(block) else block[:remaining]
            if counter:
                chunk = counter.to_bytes(8, "big") + chunk[8:] if len(chunk) > 8 else chunk
            out.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
            counter += 1
    return digest.hexdigest()
