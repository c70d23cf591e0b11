"""HTTP(S) access for lists and images: trust, token auth, conditional list fetches with size/time limits.

HTTPS servers are trusted through the system bundle *and* the grid CA directory (``capath``; many image
servers have IGTF host certificates) plus an optional ``ca_bundle`` file.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, _basic_auth_str

from .. import __version__
from ..errors import FedcloudSiteError

USER_AGENT = f"fedcloud-site-images/{__version__}"
CHUNK = 1 << 20


class FetchError(FedcloudSiteError):
    """A list or image could not be fetched; the message says why (status, timeout, size...)."""


class _TrustAdapter(HTTPAdapter):
    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self._context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(*args, **kwargs)


def origin(url: str) -> Optional[Tuple[str, str, int]]:
    """``(scheme, host, port)`` of an http(s) URL (default ports filled in), else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.scheme, parts.hostname.lower(), port


class OriginToken(AuthBase):
    """The subscription token (AppDB: basic auth, the token as user, ``x-oauth-basic`` as password), sent only
    to the list URL's own origin and only over https: never to an image host, never in clear."""

    def __init__(self, token: str, list_url: str) -> None:
        self.token = token
        self.origin = origin(list_url)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        target = origin(request.url or "")
        if self.origin is not None and self.origin[0] == "https" and target == self.origin:
            request.headers["Authorization"] = _basic_auth_str(self.token, "x-oauth-basic")
        return request


def make_session(capath: Optional[Path] = None, ca_bundle: Optional[Path] = None,
                 token: Optional[str] = None, token_url: str = "") -> requests.Session:
    """A session trusting the system CAs, ``capath`` (hashed CA dir) and ``ca_bundle``; ``token`` as basic auth
    for requests to ``token_url``'s origin over https only (see :class:`OriginToken`)."""
    context = ssl.create_default_context()
    if capath is not None and Path(capath).is_dir():
        context.load_verify_locations(capath=str(capath))
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    session = requests.Session()
    session.mount("https://", _TrustAdapter(context))
    session.headers["User-Agent"] = USER_AGENT
    if token:
        session.auth = OriginToken(token, token_url)
    return session


def _socket_of(response: requests.Response) -> Optional[socket.socket]:
    connection = getattr(response.raw, "connection", None) or getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def bounded_reads(response: requests.Response, deadline: float, stall: float, what: str,
                  limit_name: str) -> Iterator[bytes]:
    """The body of ``response`` as the bytes arrive, within a wall-clock ``deadline`` (``time.monotonic()``)
    and with at most ``stall`` seconds between arrivals, whatever the chunk size: every socket read waits at
    most until the deadline, so a server dripping one byte at a time cannot stretch the transfer.
    :class:`FetchError` names ``what`` and the limit (``limit_name``) that ended it."""
    raw = response.raw
    read = getattr(raw, "read1", None)
    sock = _socket_of(response)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"{what}: took longer than {limit_name}")
        if sock is not None:
            sock.settimeout(max(min(stall, remaining), 0.001))
        try:
            chunk = read(CHUNK) if read is not None else raw.read(CHUNK)
        except Exception as exc:  # a socket timeout surfaces as urllib3's/requests' own error types
            if time.monotonic() >= deadline:
                raise FetchError(f"{what}: took longer than {limit_name}") from exc
            raise
        if not chunk:
            return
        yield chunk


@dataclass
class ListResponse:
    not_modified: bool
    body: bytes = b""
    etag: Optional[str] = None
    last_modified: Optional[str] = None


def fetch_list(session: requests.Session, url: str, max_bytes: int, timeout: float,
               etag: Optional[str] = None, last_modified: Optional[str] = None) -> ListResponse:
    """GET a list (conditionally), at most ``max_bytes`` and ``timeout`` seconds in all."""
    if url.startswith("file://"):
        return _fetch_file(url, max_bytes, etag, last_modified)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + timeout
    try:
        with session.get(url, headers=headers, stream=True, timeout=(min(timeout, 30), timeout)) as response:
            if response.status_code == 304:
                return ListResponse(True, etag=etag, last_modified=last_modified)
            if response.status_code != 200:
                raise FetchError(f"GET {url}: HTTP {response.status_code} {response.reason}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"GET {url}: list is {declared} bytes, more than max_list_size ({max_bytes})")
            body = bytearray()
            for chunk in bounded_reads(response, deadline, timeout, f"GET {url}", f"list_timeout ({timeout:g} s)"):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"GET {url}: list is larger than max_list_size ({max_bytes} bytes)")
            return ListResponse(False, bytes(body), response.headers.get("ETag"),
                                response.headers.get("Last-Modified"))
    except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as exc:
        if time.monotonic() >= deadline:
            raise FetchError(f"GET {url}: took longer than list_timeout ({timeout:g} s)") from exc
        raise FetchError(f"GET {url}: {type(exc).__name__}: {exc}") from exc


def local_path(url: str) -> Path:
    """The path of a ``file://`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: file URLs must be local (file:///path)")
    return Path(unquote(parts.path))


def _fetch_file(url: str, max_bytes: int, etag: Optional[str], last_modified: Optional[str]) -> ListResponse:
    """A local list; unchanged when its tag (modification time in ns and size) is the one given (a file
    rewritten within the second of its last change has the same Last-Modified, so that alone is not used
    when there is a tag)."""
    path = local_path(url)
    try:
        stat = path.stat()
        modified = formatdate(stat.st_mtime, usegmt=True)
        tag = f'"file-{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        if (etag == tag) if etag else (last_modified == modified):
            return ListResponse(True, etag=tag, last_modified=modified)
        if stat.st_size > max_bytes:
            raise FetchError(f"{path}: list is {stat.st_size} bytes, more than max_list_size ({max_bytes})")
        return ListResponse(False, path.read_bytes(), tag, modified)
    except OSError as exc:
        raise FetchError(f"{path}: cannot read list: {exc.strerror or exc}") from exc
