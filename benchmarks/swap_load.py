"""The swap load generator of ``make bench-api``: a process of its own, its CPU measured.

Run: ``python -m benchmarks.swap_load --port P --tokens FILE --seconds S [--connections 50]
[--raw]``. Prints one JSON line: pairs, pairs/s, pair latency p50/p99/max (ms), errors by kind,
and the CPU seconds this process used while driving (user + system), so the bench can put the
generator's CPU per pair beside the API's and PostgreSQL's.

Each of ``--connections`` keep-alive HTTP/1.1 connections takes the next unused token (one
customer each) and sends ``POST /v1/me/swaps/quote`` (400 ridehail points), then ``POST
/v1/me/swaps`` with the quote id it got, each with a fresh ``Idempotency-Key``; a pair counts
when the swap answers 202 ``pending``. ``--raw`` sends ``GET /health`` twice instead: the
ceiling of this generator and the server's HTTP layer on these cores, measured the same way.

Why not httpx (the bench's earlier client): it took about as much CPU per request as the
route it measured, on the same two cores. Here requests are prebuilt bytes on an asyncio
protocol over uvloop; a response is read by its ``Content-Length`` (the API always sends one).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import uvloop

QUOTE_PATH = "/v1/me/swaps/quote"
SWAP_PATH = "/v1/me/swaps"
QUOTE_BODY = b'{"partner_id":"ridehail","points":400}'


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: Any = None  # uvloop's TCPTransport is no asyncio.Transport subclass

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._deliver()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def _deliver(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4:total])
        del self.buffer[:total]
        waiter.set_result((int(lines[0].split(b" ", 2)[1]), body))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def post(path: str, token: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Idempotency-Key: {os.urandom(12).hex()}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def drive(port: int, tokens: list[str], seconds: float, connections: int,
                raw: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    unused = itertools.cycle(tokens) if raw else iter(tokens)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def one_connection() -> None:
        transport, conn = await loop.create_connection(HttpConnection, "127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                token = next(unused, None)
                if token is None:
                    return
                started = time.perf_counter()
                if raw:
                    await conn.send(HEALTH)
                    await conn.send(HEALTH)
                    latencies.append(time.perf_counter() - started)
                    continue
                status, body = await conn.send(post(QUOTE_PATH, token, QUOTE_BODY))
                if status != 201:
                    errors[f"quote:{status}"] += 1
                    continue
                quote_id = orjson.loads(body)["quote_id"]
                status, body = await conn.send(
                    post(SWAP_PATH, token, orjson.dumps({"quote_id": quote_id})))
                if status != 202 or orjson.loads(body).get("status") != "pending":
                    errors[f"swap:{status}"] += 1
                    continue
                latencies.append(time.perf_counter() - started)
        except ConnectionError as exc:
            errors[type(exc).__name__] += 1
        finally:
            transport.close()

    cpu_before = os.times()
    begun = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - begun
    cpu_after = os.times()
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)

    return {"pairs": len(latencies), "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
            "errors": dict(errors), "seconds": round(elapsed, 2), "cpu_s": round(cpu_s, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=Path, required=True, help="one bearer token a line")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--raw", action="store_true", help="GET /health pairs (the ceiling)")
    args = parser.parse_args(argv)
    tokens = args.tokens.read_text().split()
    result = uvloop.run(drive(args.port, tokens, args.seconds, args.connections, args.raw))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
