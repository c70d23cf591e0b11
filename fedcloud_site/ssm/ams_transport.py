"""AMS delivery: messages are batched into size-guarded publish requests; a message id back is the confirmation.

Each message is published as apel/ssm publishes it (``data`` = base64 of the
S/MIME text, ``attributes.empaid`` = the queue element name), but many per
request instead of one.  A message too large for AMS even alone is refused
with :class:`MessageRejected` (the sender moves it aside) instead of failing
every run, as apel/ssm does (its issues #155/#156).
"""

from __future__ import annotations

import threading
from typing import Any, List, Optional, Tuple

from ..ams import AmsClient, AmsError, AmsMessage, MessageTooLarge
from ..log import get_logger
from .transport import MessageRejected, TransportError


class AmsTransport:
    """Buffers up to ``batch_size`` messages and publishes them in one request (several if too large)."""

    name = "ams"

    def __init__(self, client: AmsClient, topic: str, batch_size: int = 100,
                 stop: Optional[threading.Event] = None, log: Any = None) -> None:
        self.client = client
        self.topic = topic
        self.batch_size = max(1, batch_size)
        self.stop = stop or threading.Event()
        self.log = log or get_logger("ssm.ams")
        self._buffer: List[Tuple[str, AmsMessage]] = []
        self._buffered_bytes = 0
        self._confirmed: List[str] = []
        self._rejected: List[Tuple[str, str]] = []

    @property
    def resent(self) -> int:
        return self.client.retried_messages

    def open(self) -> None:
        try:
            self.client.authenticate()
        except AmsError as exc:
            raise TransportError(str(exc)) from exc

    def send(self, msgid: str, body: bytes) -> None:
        message = AmsMessage(body, {"empaid": msgid})
        try:
            self.client.check_size(message)
        except MessageTooLarge as exc:
            raise MessageRejected(msgid, str(exc)) from exc
        size = self.client.encoded_size(message)
        if self._buffer and self._buffered_bytes + size + 64 > self.client.max_request_bytes:
            self._publish()
        self._buffer.append((msgid, message))
        self._buffered_bytes += size + 1
        if len(self._buffer) >= self.batch_size:
            self._publish()

    def _publish(self) -> None:
        """Publish the buffer; what AMS took is confirmed, a message it refuses as too large is rejected."""
        while self._buffer:
            ids = [msgid for msgid, _ in self._buffer]
            try:
                published = self.client.publish(self.topic, [message for _, message in self._buffer])
            except MessageTooLarge as exc:
                self._take(len(exc.published))
                msgid, _ = self._buffer.pop(0)
                self._rejected.append((msgid, str(exc)))
                continue
            except AmsError as exc:
                self._take(len(exc.published))
                raise TransportError(str(exc)) from exc
            self._take(len(published))
            self.log.debug("published to AMS", topic=self.topic, messages=len(ids), first_id=published[0])
        self._buffered_bytes = 0

    def _take(self, count: int) -> None:
        done, self._buffer = self._buffer[:count], self._buffer[count:]
        self._confirmed.extend(msgid for msgid, _ in done)
        self._buffered_bytes = sum(self.client.encoded_size(m) + 1 for _, m in self._buffer)

    def confirmed(self) -> List[str]:
        done, self._confirmed = self._confirmed, []
        return done

    def rejected(self) -> List[Tuple[str, str]]:
        """(msgid, reason) of messages AMS can never take."""
        done, self._rejected = self._rejected, []
        return done

    def flush(self, timeout: float) -> None:
        self._publish()

    def unconfirmed(self) -> List[str]:
        return [msgid for msgid, _ in self._buffer]

    def close(self) -> None:
        self.client.session.close()


def make_ams_transport(settings: Any, topic: str, stop: threading.Event, log: Any) -> AmsTransport:
    """The AMS transport of the ``ssm`` section to ``topic`` (token, or the host certificate exchanged for one)."""
    ams = settings.ams
    verify: Any = str(settings.capath) if settings.capath and settings.capath.is_dir() else True
    token = str(ams.token) if ams.token else None
    client = AmsClient(ams.host, ams.project, token=token,
                       cert=None if token else str(settings.certificate), key=None if token else str(settings.key),
                       port=ams.port, auth_url=ams.auth_url, verify=verify, timeout=float(ams.timeout),
                       retries=ams.retries, max_request_bytes=ams.max_request_bytes)
    return AmsTransport(client, topic, batch_size=ams.batch_size, stop=stop, log=log)
