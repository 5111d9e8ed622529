"""A load generator for our API and its reference server: the bare asyncio keep-alive client.

It sends one prepared request (any body and headers) over ``concurrency`` keep-alive
connections, each waiting for its answer before sending again, either for ``duration`` seconds
after a warm-up (requests per second), or until ``count`` requests are answered (then it reports
when the first was sent and the last answered, in ``time.monotonic()``). With ``--rate`` it sends
``count`` events open loop instead, each JSON body given an ``id`` of its own, and reports when
each was answered (scenario 2 through the API). It is the cheapest client
we have (``bench.clients``: about 2.5 times raw aiohttp), so that the server, not the client, is
what gets measured. Run in a process of its own::

    python -m bench.load --url http://127.0.0.1:8080/events --body-file event.json \\
        --header 'X-API-Key: aw_…' --concurrency 64 --duration 5 --warmup 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .clients import _BareConnection

__all__ = ["main", "prepare"]


def prepare(url: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """The request's bytes: a POST of ``body`` with ``headers``, keep-alive."""
    parts = urlsplit(url)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _run(
    url: str, request: bytes, concurrency: int, duration: float, warmup: float, count: int | None
) -> dict[str, Any]:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(_BareConnection, parts.hostname, parts.port or 80)
        connections.append(protocol)
    statuses: Counter[int] = Counter()
    sent = 0
    stop = False
    first_sent: float | None = None

    async def drive(connection: _BareConnection) -> None:
        nonlocal sent, first_sent
        while not stop and (count is None or sent < count):
            sent += 1
            if first_sent is None:
                first_sent = time.monotonic()
            connection.waiter = loop.create_future()
            assert connection.transport is not None
            connection.transport.write(request)
            try:
                statuses[await connection.waiter] += 1
            except ConnectionError:
                statuses[0] += 1
                return

    tasks = [asyncio.ensure_future(drive(c)) for c in connections]
    result: dict[str, Any]
    if count is not None:
        await asyncio.gather(*tasks)
        ended = time.monotonic()
        assert first_sent is not None
        result = {"requests": sum(statuses.values()), "began": first_sent, "ended": ended}
        result["rps"] = result["requests"] / (ended - first_sent)
    else:
        await asyncio.sleep(warmup)
        before, t0 = sum(statuses.values()), time.perf_counter()
        ok0 = sum(n for s, n in statuses.items() if 200 <= s < 300)
        await asyncio.sleep(duration)
        after, t1 = sum(statuses.values()), time.perf_counter()
        ok1 = sum(n for s, n in statuses.items() if 200 <= s < 300)
        stop = True
        await asyncio.gather(*tasks)
        result = {
            "requests": after - before,
            "rps": (ok1 - ok0) / (t1 - t0),
            "errors": (after - before) - (ok1 - ok0),
        }
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    result["statuses"] = {str(status): n for status, n in sorted(statuses.items())}
    return result


async def _open_loop(
    url: str, body: bytes, headers: list[tuple[str, str]], rate: float, count: int, pool: int
) -> dict[str, Any]:
    """Send ``count`` events open loop at ``rate`` per second, each with its own ``id``; when each
    that was accepted (2xx) was sent, by id (``answered``). Up to ``pool`` connections; a send
    waits only if all are busy."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[_BareConnection] = asyncio.Queue()
    for _ in range(pool):
        _, protocol = await loop.create_connection(_BareConnection, parts.hostname, parts.port or 80)
        idle.put_nowait(protocol)
    statuses: Counter[int] = Counter()
    answered: list[tuple[str, float]] = []

    async def send(event_id: str) -> None:
        # The body is a JSON object: give it an ``id`` so that its delivery can be told apart.
        request = prepare(url, b'{"id":"%s",' % event_id.encode() + body[1:], headers)
        connection = await idle.get()
        try:
            connection.waiter = loop.create_future()
            assert connection.transport is not None
            sent_at = time.monotonic()
            connection.transport.write(request)
            status = await connection.waiter
        finally:
            idle.put_nowait(connection)
        statuses[status] += 1
        if 200 <= status < 300:
            # When it was sent, not answered: ``serve`` may deliver before its 202 is read, and a
            # publish → delivery latency counts the publish's own time.
            answered.append((event_id, sent_at))

    tasks = []
    began = time.monotonic()
    for index in range(count):
        delay = began + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(f"evt_load_{index:07d}")))
    await asyncio.gather(*tasks)
    ended = time.monotonic()
    while not idle.empty():
        connection = idle.get_nowait()
        if connection.transport is not None:
            connection.transport.close()
    return {
        "requests": count,
        "began": began,
        "ended": ended,
        "sent_per_s": count / (ended - began),
        "answered": answered,
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--count", type=int, help="send this many requests instead of timing a duration")
    parser.add_argument(
        "--rate", type=float, help="with --count: send open loop at this rate, each event with its own id"
    )
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    headers = [tuple(part.strip() for part in h.split(":", 1)) for h in args.header]
    request = prepare(args.url, args.body_file.read_bytes(), headers)  # type: ignore[arg-type]
    factory = None
    if args.loop == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        if args.rate and args.count:
            body = args.body_file.read_bytes()
            pool = args.concurrency
            result = runner.run(_open_loop(args.url, body, headers, args.rate, args.count, pool))  # type: ignore[arg-type]
        else:
            result = runner.run(
                _run(args.url, request, args.concurrency, args.duration, args.warmup, args.count)
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
