"""A bounded execution log: the head and the tail are kept, the middle is elided with a marker."""

from __future__ import annotations

import threading


class BoundedLog:
    def __init__(self, max_bytes: int) -> None:
        self.half = max(max_bytes // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self._lock = threading.Lock()

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        with self._lock:
            self.total += len(data)
            room = self.half - len(self.head)
            if room > 0:
                self.head += data[:room]
                data = data[room:]
            if data:
                self.tail += data
                if len(self.tail) > self.half:
                    del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        with self._lock:
            elided = self.total - len(self.head) - len(self.tail)
            middle = f"\n[... {elided} bytes elided ...]\n".encode() if elided else b""
            text = (bytes(self.head) + middle + bytes(self.tail)).decode("utf-8", errors="replace")
        # A job may print NUL bytes; PostgreSQL text columns refuse them (and the run would be stuck).
        return text.replace("\x00", "\ufffd")


class LogStream:
    """A text stream (for redirect_stdout) that writes into a BoundedLog."""

    def __init__(self, log: BoundedLog) -> None:
        self.log = log

    def write(self, text: str) -> int:
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        pass
