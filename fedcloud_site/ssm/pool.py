"""Several transports used as one: messages spread over parallel connections.

A broker handles the messages of one connection one after the other (and, with
``persistent``, stores each before the next); parallel connections let it work
on several at once and batch its disk syncs.  One member failing does not stop
the others: its unconfirmed messages simply stay queued for the next run.
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple

from ..log import get_logger
from .transport import Transport, TransportError


class PooledTransport:
    """Sends each message on the member with the fewest unconfirmed messages."""

    def __init__(self, members: Sequence[Transport], log: Any = None) -> None:
        if not members:
            raise ValueError("a pool needs at least one transport")
        self.members = list(members)
        self.name = self.members[0].name
        self.log = log or get_logger("ssm.pool")
        self._alive: List[Transport] = []
        self._errors: List[str] = []

    @property
    def resent(self) -> int:
        return sum(member.resent for member in self.members)

    def open(self) -> None:
        for index, member in enumerate(self.members):
            try:
                member.open()
            except TransportError as exc:
                self._errors.append(str(exc))
                self.log.warning("a parallel connection could not be opened", connection=index, error=str(exc))
                continue
            self._alive.append(member)
        if not self._alive:
            raise TransportError(self._errors[0])

    def _fail(self, member: Transport, exc: TransportError) -> None:
        if member in self._alive:
            self._alive.remove(member)
        self._errors.append(str(exc))
        self.log.warning("a parallel connection failed; its messages stay queued", error=str(exc),
                         unconfirmed=len(member.unconfirmed()), connections_left=len(self._alive))

    def send(self, msgid: str, body: bytes) -> None:
        if not self._alive:
            raise TransportError(self._errors[-1] if self._errors else "no connection")
        member = min(self._alive, key=lambda m: len(m.unconfirmed()))
        try:
            member.send(msgid, body)
        except TransportError as exc:
            self._fail(member, exc)
            if not self._alive:
                raise

    def confirmed(self) -> List[str]:
        done: List[str] = []
        for member in self.members:
            done.extend(member.confirmed())
        return done

    def rejected(self) -> List[Tuple[str, str]]:
        done: List[Tuple[str, str]] = []
        for member in self.members:
            take = getattr(member, "rejected", None)
            if callable(take):
                done.extend(take())
        return done

    def flush(self, timeout: float) -> None:
        for member in list(self._alive):
            try:
                member.flush(timeout)
            except TransportError as exc:
                self._fail(member, exc)
        if self.unconfirmed():  # a failed connection still holds messages: they wait for the next run
            raise TransportError("; ".join(dict.fromkeys(self._errors)) or "a connection failed")

    def unconfirmed(self) -> List[str]:
        pending: List[str] = []
        for member in self.members:
            pending.extend(member.unconfirmed())
        return pending

    def close(self) -> None:
        for member in self.members:
            member.close()
