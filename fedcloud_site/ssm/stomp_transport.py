"""STOMP delivery through stomp.py: TLS with the host certificate, pipelined receipts, reconnect and failover.

apel/ssm keeps one message in flight and busy-waits for *any* receipt, with no
timeout.  Here up to ``window`` messages are in flight; each SEND carries
``receipt`` = ``empa-id`` = the queue element name and a message counts as
delivered only when the RECEIPT with exactly that id arrives on the
connection that sent it.  A lost connection, an ERROR frame or a receipt that
does not come within ``receipt_timeout`` makes the transport reconnect (with
backoff, trying the next broker of the list first) and send the unconfirmed
messages again: those may then arrive twice, which is counted in ``resent``
and logged (the receiver can drop duplicates by ``empa-id``).

With TLS, the broker's certificate is checked again right after the handshake
(host name, and revocation against the CRLs of ``capath``: see :mod:`.peer`).
Works with stomp.py >= 8.0 (Debian 12 ships 8.0.0, whose ``set_ssl`` has no
``verify`` argument, whose TLS context checks no host name and whose threads
share the TLS socket: see :mod:`.stomp_compat`).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import stomp
import stomp.exception

from ..log import get_logger
from .peer import BrokerCertificateError, PeerVerifier, check_hostname, peer_chain
from .stomp_compat import SERIALIZES_TLS, serialize_tls, set_ssl_options
from .transport import TransportError

Broker = Tuple[str, int]


@dataclass(frozen=True)
class TlsFiles:
    """Client certificate and key, the CA bundle that must have issued the broker's certificate, and the CA
    directory (with CRLs) it is checked against after the handshake (None: no such check)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    capath: Optional[Path] = None


class _Listener(stomp.ConnectionListener):
    """Forwards the frames of one connection (one generation) to the transport."""

    def __init__(self, owner: StompTransport, generation: int) -> None:
        self.owner = owner
        self.generation = generation

    def on_connected(self, frame: Any) -> None:
        self.owner._on_connected(self.generation, frame)

    def on_receipt(self, frame: Any) -> None:
        self.owner._on_receipt(self.generation, frame.headers.get("receipt-id", ""))

    def on_error(self, frame: Any) -> None:
        message = frame.headers.get("message", "")
        body = frame.body if isinstance(frame.body, str) else (frame.body or b"").decode("utf-8", "replace")
        detail = " ".join(part for part in (message, body.strip()[:300]) if part)
        self.owner._on_lost(self.generation, f"broker sent ERROR: {detail or 'no details'}",
                            frame.headers.get("receipt-id"))

    def on_disconnected(self) -> None:
        self.owner._on_lost(self.generation, "connection lost", None)

    def on_heartbeat_timeout(self) -> None:
        self.owner._on_lost(self.generation, "broker heart-beats stopped", None)


class StompTransport:
    """Pipelined STOMP sender over a list of brokers (failover in order)."""

    name = "stomp"

    def __init__(self, brokers: Sequence[Broker], destination: str, *, tls: Optional[TlsFiles] = None,
                 window: int = 100, receipt_timeout: float = 60.0, connect_timeout: float = 20.0,
                 heartbeat: float = 30.0, persistent: bool = True, reconnects: int = 3, version: str = "1.2",
                 backoff: Tuple[float, float] = (1.0, 30.0), stop: Optional[threading.Event] = None,
                 log: Any = None) -> None:
        if not brokers:
            raise TransportError("no STOMP broker to send to")
        self.brokers = list(brokers)
        self.destination = destination
        self.tls = tls
        self.window = max(1, window)
        self.receipt_timeout = receipt_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat_ms = int(heartbeat * 1000)
        self.persistent = persistent
        self.reconnects = reconnects
        self.version = version
        self.backoff = backoff
        self.stop = stop or threading.Event()
        self.log = log or get_logger("ssm.stomp")
        self.resent = 0
        self.reconnections = 0
        self.broker: Optional[Broker] = None
        self._cond = threading.Condition()
        self._outstanding: OrderedDict[str, Tuple[bytes, float]] = OrderedDict()
        self._confirmed: List[str] = []
        self._conn: Optional[Any] = None
        self._generation = 0
        self._connected = False
        self._lost: Optional[str] = None
        self._next_broker = 0
        self._peer_verifier = PeerVerifier(tls.capath) if tls is not None and tls.capath is not None else None
        self._peer_problem: Optional[str] = None

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the first broker of the list that answers."""
        self._connect_any(attempts=1)

    def _connect_any(self, attempts: int) -> None:
        errors: List[str] = []
        for attempt in range(max(1, attempts)):
            if attempt:
                delay = min(self.backoff[1], self.backoff[0] * 2 ** (attempt - 1))
                self.log.info("waiting before reconnecting", seconds=delay)
                if self.stop.wait(delay):
                    break
            for offset in range(len(self.brokers)):
                broker = self.brokers[(self._next_broker + offset) % len(self.brokers)]
                try:
                    self._connect(broker)
                except TransportError as exc:
                    errors.append(f"{broker[0]}:{broker[1]}: {exc}")
                    self.log.warning("cannot connect to broker", broker=f"{broker[0]}:{broker[1]}", error=str(exc))
                    continue
                self._next_broker = (self._next_broker + offset) % len(self.brokers)
                return
            if self.stop.is_set():
                break
        raise TransportError("no broker reachable: " + "; ".join(errors[-len(self.brokers):] or ["stopped"]))

    def _connect(self, broker: Broker) -> None:
        self._drop_connection()
        with self._cond:
            self._generation += 1
            generation = self._generation
            self._connected = False
            self._lost = None
        cls = stomp.Connection12 if self.version == "1.2" else stomp.Connection11
        conn = cls(host_and_ports=[broker], prefer_localhost=False, try_loopback_connect=False,
                   reconnect_attempts_max=1, timeout=self.connect_timeout,
                   heartbeats=(self.heartbeat_ms, self.heartbeat_ms), keepalive=True, vhost=broker[0],
                   auto_decode=False, auto_content_length=True)
        if self.tls is not None:
            conn.set_ssl(for_hosts=[broker], cert_file=str(self.tls.cert_file), key_file=str(self.tls.key_file),
                         ca_certs=str(self.tls.ca_file), cert_validator=self._validator(conn),
                         **set_ssl_options(conn.set_ssl))
        conn.set_listener("fedcloud-site", _Listener(self, generation))
        self._conn = conn
        self._peer_problem = None
        try:
            conn.connect(wait=False)
        except Exception as exc:  # noqa: BLE001 - stomp.py reports TLS and socket problems in many ways
            self._drop_connection()
            if self._peer_problem is not None:
                raise TransportError(f"TLS: broker certificate rejected: {self._peer_problem}") from exc
            raise TransportError(self._diagnose(broker, exc)) from exc
        deadline = time.monotonic() + self.connect_timeout
        with self._cond:
            while not self._connected and self._lost is None and time.monotonic() < deadline:
                self._cond.wait(min(0.5, max(0.01, deadline - time.monotonic())))
            connected, lost = self._connected, self._lost
        if not connected:
            self._drop_connection()
            if lost is None and self.tls is not None:
                # TLS 1.3: the broker refuses our certificate only after the handshake; find out why
                lost = self._diagnose(broker, TransportError("no answer"))
            raise TransportError(lost or f"no CONNECTED frame within {self.connect_timeout:g} s")
        self._tcp_nodelay(conn)
        self.broker = broker
        self.log.info("connected to broker", broker=f"{broker[0]}:{broker[1]}", tls=self.tls is not None,
                      stomp=self.version)

    def _validator(self, conn: Any) -> Any:
        """stomp.py's ``cert_validator``: called after the handshake, before the CONNECT frame is sent (and
        before stomp.py < 9 starts reading the socket in its receiver thread)."""

        def validate(_peer_cert: Any, host: str) -> Tuple[bool, Optional[str]]:
            try:
                self._check_peer(getattr(conn.transport, "socket", None), host)
            except BrokerCertificateError as exc:
                self._peer_problem = str(exc)
                return False, str(exc)
            if not SERIALIZES_TLS:
                serialize_tls(conn.transport)
            return True, None

        return validate

    def _check_peer(self, sock: Any, host: str) -> None:
        """Host name (stomp.py 8.0 does not check it) and revocation of the broker's certificate."""
        if sock is None:
            raise BrokerCertificateError("no TLS connection to check")
        if self._peer_verifier is not None:
            self._peer_verifier.check(sock, host)
        else:
            chain = peer_chain(sock)
            if chain:
                check_hostname(chain[0], host)

    @staticmethod
    def _tcp_nodelay(conn: Any) -> None:
        """Small frames (receipts, heart-beats, a message's last bytes) go out at once, not after 40 ms."""
        sock = getattr(conn.transport, "socket", None)
        try:
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _drop_connection(self, graceful: bool = False) -> None:
        """Forget the current connection.

        ``graceful``: send DISCONNECT and wait (briefly) for its receipt first, so that
        receipts the broker sent before it are still taken in.
        """
        conn = self._conn
        if conn is not None and graceful and self._connected:
            try:
                conn.disconnect(receipt=None)
                deadline = time.monotonic() + min(5.0, self.receipt_timeout)
                while conn.transport.is_connected() and time.monotonic() < deadline:
                    time.sleep(0.02)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self._conn = None
        with self._cond:
            self._generation += 1  # frames of the old connection are ignored from now on
            self._connected = False
        if conn is None:
            return
        try:
            conn.remove_listener("fedcloud-site")
        except KeyError:
            pass
        sock = getattr(conn.transport, "socket", None)
        if sock is not None:
            # shut the TCP connection first: stomp.py's TLS close (unwrap) would otherwise wait
            # for ever for the close_notify of a broker that froze
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
        try:
            conn.transport.disconnect_socket()
        except Exception:  # noqa: BLE001 - the socket may already be gone
            pass

    # -- listener callbacks (stomp.py's receiver thread) ----------------------------------------
    def _on_connected(self, generation: int, frame: Any) -> None:
        with self._cond:
            if generation == self._generation:
                self._connected = True
                self._cond.notify_all()

    def _on_receipt(self, generation: int, receipt_id: str) -> None:
        with self._cond:
            if generation != self._generation:
                return
            if receipt_id in self._outstanding:
                del self._outstanding[receipt_id]
                self._confirmed.append(receipt_id)
                self._cond.notify_all()
            else:  # e.g. the receipt of our DISCONNECT; never taken as anybody's confirmation
                self.log.debug("receipt for no message in flight, ignored", receipt=receipt_id)

    def _on_lost(self, generation: int, reason: str, receipt_id: Optional[str]) -> None:
        with self._cond:
            if generation != self._generation or self._lost is not None:
                return
            self._lost = reason + (f" (about {receipt_id})" if receipt_id else "")
            self._connected = False
            self._cond.notify_all()

    # -- sending --------------------------------------------------------------------------------
    def send(self, msgid: str, body: bytes) -> None:
        """Send one message once the window has room; reconnects (and resends) when the connection fails."""
        if self._conn is None:
            self._recover("not connected")
        with self._cond:
            while True:
                problem = self._problem()
                if problem is not None:
                    break
                if len(self._outstanding) < self.window:
                    break
                self._cond.wait(self._wait_time())
            if problem is None:
                self._outstanding[msgid] = (body, time.monotonic())
        if problem is not None:
            self._recover(problem)
            with self._cond:
                self._outstanding[msgid] = (body, time.monotonic())
        try:
            self._transmit(msgid, body)
        except TransportError as exc:
            self._recover(str(exc))

    def _transmit(self, msgid: str, body: bytes) -> None:
        conn = self._conn
        if conn is None:
            raise TransportError("not connected")
        headers: Dict[str, str] = {"empa-id": msgid}
        if self.persistent:
            headers["persistent"] = "true"
        try:
            conn.send(self.destination, body, headers=headers, receipt=msgid)
        except Exception as exc:  # noqa: BLE001 - stomp.py surfaces socket state as various exceptions
            raise TransportError(f"sending failed: {_describe(exc)}") from exc

    def _problem(self) -> Optional[str]:
        """Why the current connection cannot be used any more (call with the condition held), or None."""
        if self._lost is not None:
            return self._lost
        if self._outstanding:
            msgid, (_, sent) = next(iter(self._outstanding.items()))
            if time.monotonic() - sent > self.receipt_timeout:
                return f"no receipt for {msgid} within {self.receipt_timeout:g} s"
        return None

    def _wait_time(self) -> float:
        if not self._outstanding:
            return 0.5
        _, sent = next(iter(self._outstanding.values()))
        return max(0.01, min(0.5, sent + self.receipt_timeout - time.monotonic() + 0.01))

    def _recover(self, reason: str) -> None:
        """Reconnect (next broker first) and resend every unconfirmed message, or raise TransportError."""
        broker = f"{self.broker[0]}:{self.broker[1]}" if self.broker else "-"
        self.log.warning("broker connection failed, reconnecting", broker=broker, reason=reason,
                         unconfirmed=len(self._outstanding))
        self._drop_connection()
        if self.broker is not None and len(self.brokers) > 1:
            self._next_broker = (self.brokers.index(self.broker) + 1) % len(self.brokers)
        attempt = 0
        first_reason = reason
        while True:
            if self.reconnections >= self.reconnects or self.stop.is_set():
                last = "" if reason == first_reason else f"; last reconnection: {reason}"
                raise TransportError(f"{first_reason}; gave up after {self.reconnections} reconnection attempts"
                                     f"{last}")
            if attempt:
                delay = min(self.backoff[1], self.backoff[0] * 2 ** (attempt - 1))
                if self.stop.wait(delay):
                    continue
            attempt += 1
            self.reconnections += 1
            try:
                self._connect_any(attempts=1)
            except TransportError as exc:
                reason = str(exc)
                continue
            with self._cond:
                pending = list(self._outstanding.items())
            if pending:
                self.resent += len(pending)
                self.log.warning("sending again messages whose receipt was lost; the broker may have them twice",
                                 count=len(pending), first=pending[0][0], last=pending[-1][0])
            try:
                now = time.monotonic()
                for msgid, (body, _) in pending:
                    with self._cond:
                        if msgid in self._outstanding:
                            self._outstanding[msgid] = (body, now)
                    self._transmit(msgid, body)
                return
            except TransportError as exc:
                reason = str(exc)
                self._drop_connection()

    def confirmed(self) -> List[str]:
        with self._cond:
            done, self._confirmed = self._confirmed, []
        return done

    def flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                while self._outstanding and self._problem() is None and time.monotonic() < deadline:
                    self._cond.wait(min(self._wait_time(), max(0.01, deadline - time.monotonic())))
                if not self._outstanding:
                    return
                problem = self._problem()
            if problem is None:
                raise TransportError(f"{len(self._outstanding)} messages not confirmed within {timeout:g} s")
            if time.monotonic() >= deadline:
                raise TransportError(problem)
            self._recover(problem)

    def unconfirmed(self) -> List[str]:
        with self._cond:
            return list(self._outstanding)

    def close(self) -> None:
        self._drop_connection(graceful=True)

    def _diagnose(self, broker: Broker, exc: BaseException) -> str:
        """Why connecting failed: stomp.py only says "connect failed", so redo the TCP/TLS part ourselves."""
        try:
            with socket.create_connection(broker, timeout=self.connect_timeout) as sock:
                if self.tls is None:
                    return _describe(exc)
                context = ssl.create_default_context(cafile=str(self.tls.ca_file))
                context.load_cert_chain(str(self.tls.cert_file), str(self.tls.key_file))
                with context.wrap_socket(sock, server_hostname=broker[0]) as tls_sock:
                    self._check_peer(tls_sock, broker[0])
                    tls_sock.settimeout(self.connect_timeout)
                    tls_sock.recv(1)  # the server checks our certificate after the handshake (TLS 1.3)
        except BrokerCertificateError as err:
            return f"TLS: broker certificate rejected: {err}"
        except ssl.SSLCertVerificationError as err:
            return f"TLS: broker certificate rejected: {err.verify_message or err}"
        except ssl.SSLError as err:
            return f"TLS: {err.reason or err} (the broker may have refused our certificate)"
        except socket.timeout:
            return "timed out (the broker accepts connections but does not answer)"
        except OSError as err:
            return f"{err.strerror or err}"
        return f"no CONNECTED frame within {self.connect_timeout:g} s" if str(exc) == "no answer" else _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, stomp.exception.ConnectFailedException):
        return "connection failed"
    return str(exc) or type(exc).__name__
