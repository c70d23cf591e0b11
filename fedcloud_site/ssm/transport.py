"""What the sender needs from a transport (STOMP or AMS), and the errors it raises."""

from __future__ import annotations

from typing import List, Protocol

from ..errors import FedcloudSiteError


class TransportError(FedcloudSiteError):
    """The transport cannot deliver now (connection, authentication, broker error); messages stay queued."""


class MessageRejected(FedcloudSiteError):
    """The transport can never deliver this one message (e.g. over the service size limit)."""

    def __init__(self, msgid: str, reason: str) -> None:
        super().__init__(f"{msgid}: {reason}")
        self.msgid = msgid
        self.reason = reason


class Transport(Protocol):
    """A pipelined delivery channel: messages go in, confirmations come back (maybe later).

    A message counts as delivered only once its id came back from :meth:`confirmed`.
    """

    name: str

    @property
    def resent(self) -> int:
        """Messages sent again after a lost confirmation; the receiver may have them twice."""

    def open(self) -> None:
        """Connect (or authenticate); raises :class:`TransportError`."""

    def send(self, msgid: str, body: bytes) -> None:
        """Hand over one message; may block while too many wait for confirmation.

        Raises :class:`MessageRejected` for a message that can never be
        delivered, :class:`TransportError` when delivery is impossible for now
        (the message then counts as unconfirmed).
        """

    def confirmed(self) -> List[str]:
        """Ids confirmed since the last call (delivery is certain for these); never blocks."""

    def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until every message handed over is confirmed.

        Raises :class:`TransportError` when the transport failed; whatever stays
        unconfirmed is listed by :meth:`unconfirmed`.
        """

    def unconfirmed(self) -> List[str]:
        """Ids handed over but not (yet) confirmed."""

    def close(self) -> None:
        """Disconnect; unconfirmed messages stay unconfirmed."""
