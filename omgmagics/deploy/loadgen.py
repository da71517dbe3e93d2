"""A small HTTP/1.1 load generator for loopback servers (core layer): replay, fixed rate, throughput.

It speaks just enough HTTP/1.1 over asyncio streams (keep-alive, ``Content-Length`` and chunked
bodies) to add almost nothing to what it measures; an HTTP client library costs more per request than
the servers it would time. Every scenario is bounded in requests and in time, and it refuses any
host but a loopback address.

Fixed-rate latency is measured from each request's *scheduled* send time, so a server that falls
behind is charged for the queueing it causes (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError

MAX_REQUESTS = 200_000
MAX_SECONDS = 300.0


@dataclass
class Result:
    """Per-request outcomes of one scenario, in send order."""

    statuses: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    errors: int = 0  # transport errors (connection refused, reset ...)

    def summary(self) -> dict[str, Any]:
        import numpy as np

        lat = np.asarray([x for x in self.latencies_ms if x is not None], dtype=float)
        n = len(self.statuses)
        ok = sum(1 for s in self.statuses if s == 200)
        return {"requests": n, "ok": ok, "non_200": n - ok, "transport_errors": self.errors,
                "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
                "max_ms": float(lat.max()) if lat.size else None,
                "elapsed_s": self.elapsed_s, "rps": n / self.elapsed_s if self.elapsed_s else None}


def check_loopback(url: str) -> tuple[str, int, str]:
    """(host, port, path) of `url`; refuses anything but a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loop = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loop = host == "localhost"
    if not loop or parts.scheme != "http":
        raise UsageError(f"The load generator only sends to http://127.0.0.1 (loopback), not {url}.")
    return host, parts.port or 80, parts.path or "/"


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            await self.open()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body or method == "POST":
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("connection closed by the server")
        status = int(line.split()[1])
        hdrs: dict[str, str] = {}
        while True:
            h = await self.reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = await self.reader.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readline()).strip().split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            data = b"".join(parts)
        else:
            data = await self.reader.read()
            self.close()
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, data


def run(coro_factory: Any) -> Any:
    """Run an async scenario to completion in its own thread and event loop (works inside Jupyter,
    whose kernel already runs a loop in the main thread)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=target, name="omg-loadgen", daemon=True)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _bounded(n: int) -> int:
    if n < 1 or n > MAX_REQUESTS:
        raise UsageError(f"A load scenario sends between 1 and {MAX_REQUESTS} requests, not {n}.")
    return n


async def _one(conn: Connection, path: str, body: bytes, headers: dict[str, str] | None,
               keep: bool, res: Result, i: int, t_ref: float) -> None:
    try:
        status, hdrs, data = await conn.request("POST", path, body, headers)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
        conn.close()
        res.statuses[i], res.latencies_ms[i] = 0, None
        res.errors += 1
        return
    res.statuses[i] = status
    res.latencies_ms[i] = (time.perf_counter() - t_ref) * 1000
    if keep:
        res.bodies[i] = data
        res.headers[i] = hdrs


def replay(url: str, bodies: list[bytes], concurrency: int = 8, headers: dict[str, str] | None = None,
           keep_bodies: bool = True, max_seconds: float = MAX_SECONDS) -> Result:
    """Send every body once (POST), `concurrency` at a time; responses kept in order."""
    host, port, path = check_loopback(url)
    n = _bounded(len(bodies))

    async def main() -> Result:
        res = Result([0] * n, [None] * n, [b""] * n, [{} for _ in range(n)])
        queue = iter(range(n))
        deadline = time.perf_counter() + max_seconds
        t0 = time.perf_counter()

        async def worker() -> None:
            conn = Connection(host, port)
            try:
                for i in queue:
                    if time.perf_counter() > deadline:
                        break
                    await _one(conn, path, bodies[i], headers, keep_bodies, res, i,
                               time.perf_counter())
            finally:
                conn.close()

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
        res.elapsed_s = time.perf_counter() - t0
        return res

    return run(main)


IDLE_S = 4.0  # a pooled connection idle longer than this is not reused (servers close them at 5 s)


def fixed_rate(url: str, bodies: list[bytes], rate: float, n: int,
               headers: dict[str, str] | None = None, max_connections: int = 64,
               max_seconds: float = MAX_SECONDS) -> Result:
    """`n` requests at `rate` per second (cycling through `bodies`), open loop.

    Each request is sent at ``t0 + i / rate`` on a free connection (a new one is opened, up to
    `max_connections`, when all are busy); its latency counts from that scheduled time.
    """
    host, port, path = check_loopback(url)
    n = _bounded(n)
    if not 0 < rate <= 100_000:
        raise UsageError(f"The request rate must be in (0, 100000] per second, not {rate}.")

    async def main() -> Result:
        res = Result([0] * n, [None] * n, [b""] * n, [{} for _ in range(n)])
        idle: list[tuple[Connection, float]] = []  # with the time each was last used
        opened = 0
        sem = asyncio.Semaphore(max_connections)
        tasks = []
        t0 = time.perf_counter() + 0.05
        deadline = t0 + max_seconds

        async def send(i: int, due: float) -> None:
            nonlocal opened
            async with sem:
                conn = None
                while idle and conn is None:
                    conn, used = idle.pop()
                    if time.perf_counter() - used > IDLE_S:
                        # the server may be closing it right now (uvicorn's keep-alive is 5 s):
                        # a request on it could fail without ever reaching the server
                        conn.close()
                        conn = None
                if conn is None:
                    conn = Connection(host, port)
                    opened += 1
                await _one(conn, path, bodies[i % len(bodies)], headers, False, res, i, due)
                if conn.writer is not None:
                    idle.append((conn, time.perf_counter()))

        for i in range(n):
            due = t0 + i / rate
            now = time.perf_counter()
            if due > deadline:
                res.statuses, res.latencies_ms = res.statuses[:i], res.latencies_ms[:i]
                break
            if due > now:
                await asyncio.sleep(due - now)
            tasks.append(asyncio.create_task(send(i, due)))
        await asyncio.gather(*tasks)
        for c, _ in idle:
            c.close()
        res.elapsed_s = time.perf_counter() - t0
        return res

    return run(main)


def throughput(url: str, bodies: list[bytes], concurrency: int = 8, seconds: float = 5.0,
               headers: dict[str, str] | None = None) -> Result:
    """Closed loop: `concurrency` clients send back to back for `seconds`; returns every outcome."""
    host, port, path = check_loopback(url)
    if not 0 < seconds <= MAX_SECONDS:
        raise UsageError(f"A throughput run lasts between 0 and {MAX_SECONDS} s, not {seconds}.")

    async def main() -> Result:
        res = Result()
        t0 = time.perf_counter()
        end = t0 + seconds

        async def worker(k: int) -> None:
            conn = Connection(host, port)
            i = k
            try:
                while time.perf_counter() < end and len(res.statuses) < MAX_REQUESTS:
                    res.statuses.append(0)
                    res.latencies_ms.append(None)
                    j = len(res.statuses) - 1
                    await _one(conn, path, bodies[i % len(bodies)], headers, False, res, j,
                               time.perf_counter())
                    i += concurrency
            finally:
                conn.close()

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        res.elapsed_s = time.perf_counter() - t0
        return res

    return run(main)
