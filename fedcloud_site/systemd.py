"""systemd notification protocol (sd_notify) without a C library."""

from __future__ import annotations

import os
import socket
from typing import Optional

#: how long one notification may wait for room in the receiver's queue
NOTIFY_TIMEOUT = 2.0


def notify(message: str) -> bool:
    """Send ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1`` ... to systemd if it listens.

    A datagram socket blocks the sender while the receiver's queue is full (``net.unix.max_dgram_qlen``, 10
    by default); the wait is bounded, so a listener that stopped reading never hangs the daemon (SIGTERM
    included): the notification is then dropped (False)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(NOTIFY_TIMEOUT)
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
        return True
    except OSError:  # includes the timeout
        return False


def watchdog_interval() -> Optional[float]:
    """Seconds between watchdog pings (half of WATCHDOG_USEC), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.5)
    except ValueError:
        return None
