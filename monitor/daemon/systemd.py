"""systemd ``Type=notify``: READY, WATCHDOG and STOPPING over ``$NOTIFY_SOCKET``.

A no-op outside systemd. Written against the protocol (a datagram per message)
rather than a library: it is a few lines and has no dependencies.
"""

from __future__ import annotations

import socket
import time

# systemd wants a ping within WatchdogSec; more often than this is only noise.
WATCHDOG_INTERVAL_SECONDS = 2.0


class SystemdNotifier:
    def __init__(self, address: str | None) -> None:
        self.address = address
        self._last_watchdog = float("-inf")
        if address and address.startswith("@"):
            self.address = "\0" + address[1:]  # an abstract socket

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never wait on a listener that does not read: a full queue drops the message.
                sock.setblocking(False)
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError:
            pass  # systemd going away must not stop the daemon

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        """WATCHDOG=1, at most once per ``WATCHDOG_INTERVAL_SECONDS``; call it at will."""
        now = time.monotonic()
        if now - self._last_watchdog >= WATCHDOG_INTERVAL_SECONDS:
            self._last_watchdog = now
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
