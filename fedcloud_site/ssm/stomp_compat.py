"""What older stomp.py releases (8.x: Debian 12 ships 8.0.0) need to be used like stomp.py 9.

* ``Connection.set_ssl`` has no ``verify`` argument before 9.0 (it verifies whenever
  ``ca_certs`` is given): :func:`set_ssl_options`.
* Before 9.0 the receiver thread reads the TLS socket while the sending thread
  writes it.  OpenSSL does not support one SSL connection being used by two
  threads at once; with many messages in flight (and worse with several
  connections) the reader then sees a broken record and the connection drops.
  stomp.py 9 does all TLS I/O non-blocking behind a selector.  For older
  releases the transport's socket is replaced, right after the handshake, by
  :class:`SerializedTlsSocket`, which makes each read and write a short
  non-blocking call under one lock and waits for the socket outside it.
"""

from __future__ import annotations

import inspect
import select
import socket
import ssl
import threading
from typing import Any, Dict, Optional

import stomp.utils

#: stomp.py >= 9 does its TLS I/O in one thread (non-blocking, behind a selector)
SERIALIZES_TLS = hasattr(stomp.utils, "PollableQueue")


def set_ssl_options(set_ssl: Any) -> Dict[str, Any]:
    """Extra keyword arguments for ``set_ssl``: ``verify=True`` where stomp.py has it (>= 9.0)."""
    try:
        return {"verify": True} if "verify" in inspect.signature(set_ssl).parameters else {}
    except (TypeError, ValueError):
        return {}


class SerializedTlsSocket:
    """An ``ssl.SSLSocket`` whose reads and writes never overlap, whichever threads call them.

    The callers keep blocking semantics, as with stomp.py 9: ``recv`` waits
    until data comes or the connection is shut (a quiet broker is not an
    error: heart-beats and receipt timeouts judge it), ``sendall`` until every
    byte is written, raising ``socket.timeout`` after ``gettimeout()`` seconds
    without progress.  Closing shuts the connection down first, so that a
    thread waiting to read wakes up.  Anything else is the wrapped socket's.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._timeout: Optional[float] = sock.gettimeout()
        sock.setblocking(False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    @property
    def wrapped(self) -> ssl.SSLSocket:
        return self._sock

    def settimeout(self, value: Optional[float]) -> None:
        self._timeout = value

    def gettimeout(self) -> Optional[float]:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def _wait(self, for_read: bool, timeout: Optional[float]) -> None:
        """Wait until the socket can be read (or written); ``socket.timeout`` after ``timeout``."""
        if timeout == 0.0:
            raise (ssl.SSLWantReadError if for_read else ssl.SSLWantWriteError)()
        if for_read:
            ready = select.select([self._sock], [], [], timeout)[0]
        else:
            ready = select.select([], [self._sock], [], timeout)[1]
        if not ready:
            raise socket.timeout("timed out")

    def recv(self, size: int = 1024) -> bytes:
        while True:
            with self._lock:
                try:
                    return self._sock.recv(size)
                except ssl.SSLWantReadError:
                    for_read = True
                except ssl.SSLWantWriteError:
                    for_read = False
            self._wait(for_read, None if self._timeout != 0.0 else 0.0)

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view.nbytes:
            with self._lock:
                try:
                    view = view[self._sock.send(view):]  # a retry after WantWrite passes the same bytes
                    continue
                except ssl.SSLWantWriteError:
                    for_read = False
                except ssl.SSLWantReadError:
                    for_read = True
            self._wait(for_read, self._timeout)

    def send(self, data: Any) -> int:
        self.sendall(data)
        return memoryview(data).nbytes

    def _shut(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def unwrap(self) -> SerializedTlsSocket:
        """Send the TLS close (not waiting for the broker's), then shut the connection down."""
        with self._lock:
            try:
                self._sock.unwrap()
            except (OSError, ValueError):
                pass
        self._shut()
        return self

    def close(self) -> None:
        self._shut()
        self._sock.close()


def serialize_tls(transport: Any) -> None:
    """Replace the TLS socket of a stomp.py (< 9) transport by a :class:`SerializedTlsSocket` (before its
    receiver thread starts: call from the ``cert_validator``)."""
    sock = getattr(transport, "socket", None)
    if isinstance(sock, ssl.SSLSocket):
        transport.socket = SerializedTlsSocket(sock)


__all__ = ["SERIALIZES_TLS", "SerializedTlsSocket", "serialize_tls", "set_ssl_options"]
