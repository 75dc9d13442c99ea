"""A fast stand-in for an external system, for bench/poll_scale.py: just enough HTTP/1.1 on asyncio.

    python bench/fake_external.py --port PORT [--finish-after SECONDS]

It answers, on keep-alive connections:

- POST .../oauth/token   a client-credentials token, valid for an hour;
- GET  .../status?...&executionId=ID
                         RUNNING (executionInfo "running"); an id starting with "naive-" answers COMPLETED once
                         --finish-after seconds have passed since its first Status call;
- GET  /_bench/report?since=EPOCH
                         the arrival time of every Status call since then, per executionId,
                         as JSON; POST /_bench/reset forgets them;
- anything else          204.

A raw asyncio.Protocol and a hand-made parser keep it at tens of thousands of requests per
second, so the system under test, not this, is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import time
from urllib.parse import unquote

TOKEN_BODY = json.dumps({"access_token": "bench-token", "token_type": "Bearer", "expires_in": 3600}).encode()


class Recorder:
    def __init__(self, finish_after: float) -> None:
        self.finish_after = finish_after
        self.reset()

    def reset(self) -> None:
        self.arrivals: dict[str, list[float]] = {}  # executionId → arrival time of each Status call
        self.token_calls = 0

    def status(self, execution_id: str) -> bytes:
        now = time.time()
        arrivals = self.arrivals.setdefault(execution_id, [])
        arrivals.append(now)
        status = "RUNNING"
        if execution_id.startswith("naive-") and now - arrivals[0] >= self.finish_after:
            status = "COMPLETED"
        return b'{"executionId": "%s", "status": "%s", "executionInfo": "running"}' % (
            execution_id.encode(), status.encode())

    def report(self, since: float) -> bytes:
        """Arrivals at or after `since` (epoch seconds), per executionId."""
        arrivals = {}
        for execution_id, times in self.arrivals.items():
            recent = times[bisect.bisect_left(times, since):]
            if recent:
                arrivals[execution_id] = recent
        return json.dumps({"token_calls": self.token_calls, "arrivals": arrivals}).encode()


class HTTPProtocol(asyncio.Protocol):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = self.buffer[:head_end]
            length = 0
            marker = head.lower().find(b"\r\ncontent-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker + 2)
                length = int(head[marker + 17:line_end if line_end >= 0 else None])
            if len(self.buffer) < head_end + 4 + length:
                break  # the body is still on its way
            self.buffer = self.buffer[head_end + 4 + length:]
            out.append(self.answer(head[:head.find(b"\r\n")] if b"\r\n" in head else head))
        if out:
            self.transport.write(b"".join(out))

    def answer(self, request_line: bytes) -> bytes:
        method, target, _ = request_line.split(b" ", 2)
        path, _, query = target.partition(b"?")
        status, body = b"200 OK", b""
        if path.endswith(b"/status"):
            marker = query.find(b"executionId=")
            execution_id = unquote(query[marker + 12:].split(b"&", 1)[0].decode()) if marker >= 0 else ""
            body = self.recorder.status(execution_id)
        elif path.endswith(b"/oauth/token"):
            self.recorder.token_calls += 1
            body = TOKEN_BODY
        elif path == b"/_bench/report":
            since = query.partition(b"since=")[2].split(b"&", 1)[0]
            body = self.recorder.report(float(since or 0))
        elif path == b"/_bench/reset":
            self.recorder.reset()
            status = b"204 No Content"
        else:
            status = b"204 No Content"
        return (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"Connection: keep-alive\r\n\r\n%s" % (status, len(body), body))


async def serve(port: int, finish_after: float) -> None:
    recorder = Recorder(finish_after)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HTTPProtocol(recorder), "127.0.0.1", port, backlog=1024)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--finish-after", type=float, default=10.0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.finish_after))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
