"""The reference receiver: a minimal, fast HTTP/1.1 keep-alive server for benchmarks and tests.

It runs in its own process so that it does not share the client's event loop or GIL. It answers
every POST (by default ``200 OK``), optionally checks ``X-Attribution-Signature`` against the raw
body, fails a fraction of requests, or answers after a delay. ``GET /stats`` returns its counters
as JSON.

Two control resources serve the scenario benchmarks (``bench.__main__``). ``POST /control`` takes
a JSON object: ``{"record": true}`` starts keeping, for each POST, the ``time.monotonic()`` at which
it was read, its path, its ``X-Attribution-Event-Id`` and the status answered (the monotonic clock
is system-wide on Linux, so other processes' timestamps compare with it); ``{"fail_prefix": "/a",
"fail_from": t0, "fail_until": t1}`` fails every POST whose path starts with the prefix between
those monotonic times (either bound may be null), with ``fail_status``; ``{"fail_prefix": null}``
ends that. ``GET /records`` returns the records kept so far as JSON rows ``[time, path, event id,
status]`` and forgets them. Run it directly::

    python -m bench.receiver --port 0 --secret S3cret... --verify --uvloop

It prints one JSON line, ``{"port": N, "pid": P}``, once it listens. From Python, use
``run_receiver(...)``, which starts it as a subprocess and stops it on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["ReceiverOptions", "RunningReceiver", "run_receiver", "serve"]

_MAX_HEADER = 64 * 1024
_MAX_BODY = 8 * 1024 * 1024


@dataclass
class ReceiverOptions:
    """What the receiver does with each POST."""

    port: int = 0
    host: str = "127.0.0.1"
    secret: str | None = None
    verify: bool = False
    fail_rate: float = 0.0
    fail_status: int = 500
    delay: float = 0.0
    status: int = 200
    uvloop: bool = False
    seed: int = 1

    def argv(self) -> list[str]:
        """Command-line arguments that reproduce these options."""
        args = ["--port", str(self.port), "--host", self.host, "--status", str(self.status)]
        if self.secret is not None:
            args += ["--secret", self.secret]
        if self.verify:
            args.append("--verify")
        if self.fail_rate:
            args += ["--fail-rate", str(self.fail_rate), "--fail-status", str(self.fail_status)]
        if self.delay:
            args += ["--delay", str(self.delay)]
        if self.uvloop:
            args.append("--uvloop")
        return [*args, "--seed", str(self.seed)]


@dataclass
class _Stats:
    requests: int = 0
    verified: int = 0
    bad_signature: int = 0
    failed: int = 0
    bytes_received: int = 0
    connections: int = 0
    paths: dict[str, int] = field(default_factory=dict)


@dataclass
class _Control:
    """What ``POST /control`` set: recording, and a time window in which some paths fail."""

    record: bool = False
    records: list[tuple[float, str, str, int]] = field(default_factory=list)
    fail_prefix: str | None = None
    fail_status: int = 503
    fail_from: float | None = None
    fail_until: float | None = None

    def update(self, settings: dict[str, object]) -> None:
        if "record" in settings:
            self.record = bool(settings["record"])
        if "fail_prefix" in settings:
            prefix = settings["fail_prefix"]
            self.fail_prefix = None if prefix is None else str(prefix)
            self.fail_status = int(settings.get("fail_status", 503))  # type: ignore[call-overload]
            self.fail_from = settings.get("fail_from")  # type: ignore[assignment]
            self.fail_until = settings.get("fail_until")  # type: ignore[assignment]

    def failing(self, path: str) -> bool:
        if self.fail_prefix is None or not path.startswith(self.fail_prefix):
            return False
        now = time.monotonic()
        return (self.fail_from is None or now >= self.fail_from) and (
            self.fail_until is None or now < self.fail_until
        )


def _response(status: int, body: bytes, content_type: bytes = b"text/plain") -> bytes:
    reason = {
        200: b"OK",
        401: b"Unauthorized",
        404: b"Not Found",
        500: b"Internal Server Error",
        503: b"Service Unavailable",
    }
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        status,
        reason.get(status, b"Status"),
        content_type,
        len(body),
        body,
    )


class _Receiver(asyncio.Protocol):
    def __init__(
        self, options: ReceiverOptions, stats: _Stats, rng: random.Random, control: _Control | None = None
    ) -> None:
        self._options = options
        self._stats = stats
        self._control = control or _Control()
        self._rng = rng
        self._key = options.secret.encode() if options.secret is not None else None
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a delayed answer is pending: hold further requests until it is sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._process()

    def _process(self) -> None:
        while self._transport is not None and not self._busy:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEADER:
                    self._transport.close()
                return
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            method, _, rest = head[0].partition(" ")
            path = rest.rsplit(" ", 1)[0]
            headers: dict[str, str] = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length > _MAX_BODY:
                self._transport.close()
                return
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            answer = self._answer(method, path, headers, body)
            close = headers.get("connection", "").lower() == "close"
            if self._options.delay and method == "POST":
                self._busy = True
                asyncio.get_running_loop().call_later(self._options.delay, self._send_late, answer, close)
                return
            self._transport.write(answer)
            if close:
                self._transport.close()

    def _send_late(self, answer: bytes, close: bool) -> None:
        self._busy = False
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(answer)
        if close:
            self._transport.close()
        else:
            self._process()

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        stats = self._stats
        if method == "GET" and path == "/stats":
            payload = dict(vars(stats).items())
            return _response(200, json.dumps(payload).encode(), b"application/json")
        control = self._control
        if method == "GET" and path == "/records":
            records, control.records = control.records, []
            return _response(200, json.dumps(records).encode(), b"application/json")
        if method == "POST" and path == "/control":
            control.update(json.loads(body))
            return _response(200, b"OK")
        answer = self._count(path, headers, body)
        if control.record:
            status = int(answer[9:12])
            control.records.append(
                (time.monotonic(), path, headers.get("x-attribution-event-id", ""), status)
            )
        return answer

    def _count(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        stats = self._stats
        stats.requests += 1
        stats.bytes_received += len(body)
        stats.paths[path] = stats.paths.get(path, 0) + 1
        if self._key is not None:
            expected = hmac.new(self._key, body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(headers.get("x-attribution-signature", ""), expected):
                stats.verified += 1
            else:
                stats.bad_signature += 1
                if self._options.verify:
                    return _response(401, b"Invalid signature")
        if self._options.fail_rate and self._rng.random() < self._options.fail_rate:
            stats.failed += 1
            return _response(self._options.fail_status, b"failing on purpose")
        if self._control.failing(path):
            stats.failed += 1
            return _response(self._control.fail_status, b"down on purpose")
        return _response(self._options.status, b"OK")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(options: ReceiverOptions, ready: asyncio.Future[int] | None = None) -> None:
    """Serve until cancelled; ``ready`` gets the bound port."""
    stats = _Stats()
    control = _Control()
    rng = random.Random(options.seed)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Receiver(options, stats, rng, control), options.host, options.port, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready.set_result(port)
    else:
        print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class RunningReceiver:
    """A receiver process started by ``run_receiver``."""

    process: subprocess.Popen[str]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def stats(self) -> dict[str, int]:
        """The receiver's counters."""
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/stats", timeout=5) as answer:
            result: dict[str, int] = json.loads(answer.read())
            return result

    def control(self, **settings: object) -> None:
        """Start or stop recording, or set a failure window (see the module's docstring)."""
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}/control", data=json.dumps(settings).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()

    def records(self) -> list[tuple[float, str, str, int]]:
        """The records kept since the last call: ``(monotonic time, path, event id, status)``."""
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/records", timeout=30) as answer:
            return [tuple(row) for row in json.loads(answer.read())]  # type: ignore[misc]


@contextlib.contextmanager
def run_receiver(options: ReceiverOptions | None = None) -> Iterator[RunningReceiver]:
    """Start the receiver in its own process; stop it on exit."""
    options = options or ReceiverOptions()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver", *options.argv()],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the receiver exited before listening")
        yield RunningReceiver(process, options.host, json.loads(line)["port"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _parse(argv: list[str] | None) -> ReceiverOptions:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--secret", help="count requests whose X-Attribution-Signature verifies")
    parser.add_argument("--verify", action="store_true", help="answer 401 when the signature is wrong")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests to fail")
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop when it is installed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return ReceiverOptions(
        port=args.port,
        host=args.host,
        secret=args.secret,
        verify=args.verify,
        fail_rate=args.fail_rate,
        fail_status=args.fail_status,
        delay=args.delay,
        status=args.status,
        uvloop=args.uvloop,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> None:
    options = _parse(argv)
    factory = None
    if options.uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(options))


if __name__ == "__main__":
    main()
