"""systemd ``Type=notify``: READY, WATCHDOG and STOPPING over ``$NOTIFY_SOCKET``.

A no-op outside systemd. Written against the protocol (a datagram per message)
rather than a library: it is a few lines and has no dependencies.
"""

from __future__ import annotations

import socket


class SystemdNotifier:
    def __init__(self, address: str | None) -> None:
        self.address = address
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
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
