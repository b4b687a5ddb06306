"""The abuse campaign against one container: hostile bodies, slow clients, a /health prober.

Everything is bounded (request counts, concurrency, time limits) and aimed at the container's
published loopback port only. `test_abuse.py` holds the expectations; this module only measures.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import docker.models.containers
import httpx

from service_images.containers import Service

CONCURRENCY = 24
HOSTILE_ROUNDS = 2  # the hostile table, sent this many times
VALID_ROUNDS = 4  # one small valid request per endpoint, this many times
HEAVY_ROUNDS = 10  # a MAX_CANDLES series to each candle endpoint, this many times
REQUEST_TIMEOUT_S = 30.0
BURST_DEADLINE_S = 40.0  # a service that falls behind fails in bounded time
PROBE_INTERVAL_S = 0.02
PROBE_TIMEOUT_S = 5.0
PROBE_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16)
SAMPLE_INTERVAL_S = 0.5  # Docker health status and memory, during the campaign
SLOW_CLIENTS = 48  # split evenly over SLOW_KINDS
CANDLE_PATHS = ("/api/v1/indicators", "/api/v1/signal", "/api/v1/analysis")
FORECAST = "/api/v1/forecast"
BACKENDS = ("torch", "tensorflow")
OVERSIZED_BYTES = 3 * 1024 * 1024  # over the service's 2 MiB MAX_BODY_BYTES
MAX_CANDLES = 5000  # the most the service accepts (its MAX_CANDLES)


def candles(count: int = 60, *, reverse: bool = False) -> list[dict[str, float]]:
    """A deterministic, valid OHLCV series (timestamps reversed when `reverse`)."""
    series = []
    for i in range(count):
        close = 100 + 10 * math.sin(i / 5) + i * 0.1
        open_ = close - math.cos(i / 3)
        high, low = max(open_, close) + 0.5, min(open_, close) - 0.5
        stamp = 1_700_000_000 + 60 * (count - i if reverse else i)
        candle = {"timestamp": stamp, "open": open_, "close": close, "high": high, "low": low}
        series.append({**candle, "volume": 1000 + 10 * i})
    return series


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _with_nan(field: str) -> bytes:
    if field == "closes":
        return _json({"closes": [math.nan, math.inf, -math.inf] * 10})  # json writes NaN/Infinity
    series = candles()
    series[10]["close"], series[20]["high"], series[30]["low"] = math.nan, math.inf, -math.inf
    return _json({"candles": series})


@dataclass(frozen=True)
class Hostile:
    """A body no client should send, and the answers that refuse it."""

    kind: str
    body: Callable[[str], bytes]
    """The body, given the endpoint's list field ("candles" or "closes")."""
    refused_with: frozenset[int]
    content_type: str = "application/json"
    fields: tuple[str, ...] = ("candles", "closes")
    """The endpoints it is sent to, by their list field."""
    reset_ok: bool = False
    """The server may refuse by closing the connection while the client still sends."""
    chunked: bool = False
    copies: int = 1
    """Sent this many times per round (the costly cases: the load is the point)."""


def _oversized(f: str) -> bytes:
    return _json({f: "a" * OVERSIZED_BYTES})


def _nested(f: str) -> bytes:
    return b'{"%s": %s%s}' % (f.encode(), b"[" * 50_000, b"]" * 50_000)


BAD_JSON = frozenset({400, 422})
HOSTILE = (
    # 30,000 validation errors each: the answer shows a few and counts the rest.
    Hostile(
        "5000 empty objects", lambda f: _json({f: [{}] * 5000}), frozenset({413, 422}), copies=3
    ),
    # The review's exact body, sent to every endpoint: a JSON escape that decodes to no character.
    # Under MAX_BODY_BYTES, but validated in full it took some 2 GiB: refused at item 5001.
    Hostile(
        "400,000 empty objects",
        lambda f: _json({f: [{}] * 400_000}),
        frozenset({413}),
        reset_ok=True,
        copies=2,
    ),
    Hostile("lone surrogate", lambda f: b'{"candles": "\\ud800"}', frozenset({422})),
    Hostile("surrogate in list", lambda f: b'{"%s": ["\\ud800"]}' % f.encode(), frozenset({422})),
    Hostile("surrogate key", lambda f: b'{"\\udfff": 1, "%s": []}' % f.encode(), frozenset({422})),
    Hostile("oversized 3 MiB", _oversized, frozenset({413}), reset_ok=True),
    Hostile("oversized chunked", _oversized, frozenset({413}), reset_ok=True, chunked=True),
    Hostile(
        "6000 valid candles", lambda f: _json({f: candles(MAX_CANDLES + 1000)}), frozenset({413})
    ),
    Hostile("nested 50000 deep", _nested, BAD_JSON),
    Hostile("NaN/Infinity", _with_nan, frozenset({422})),
    Hostile(
        "non-monotonic timestamps",
        lambda f: _json({f: candles(60, reverse=True)}),
        frozenset({422}),
        fields=("candles",),
    ),
    Hostile("malformed JSON", lambda f: b'{"%s": [{"open": 1,' % f.encode(), BAD_JSON),
    Hostile("invalid UTF-8", lambda f: b'{"%s": "\xff\xfe"}' % f.encode(), BAD_JSON),
    Hostile("5000-digit integer", lambda f: b'{"%s": [1%s]}' % (f.encode(), b"0" * 5000), BAD_JSON),
    Hostile(
        "text/plain body",
        lambda f: _json({f: candles()}),
        frozenset({415}),
        content_type="text/plain",
    ),
    Hostile("UTF-16 JSON", lambda f: json.dumps({f: candles()}).encode("utf-16"), frozenset({400})),
)


@dataclass(frozen=True)
class Call:
    """One request of the burst."""

    method: str
    path: str
    kind: str
    body: bytes | None = None
    content_type: str = "application/json"
    backend: str | None = None
    hostile: Hostile | None = None

    def label(self) -> str:
        where = f"{self.path}?backend={self.backend}" if self.backend else self.path
        return f"{self.method} {where} [{self.kind}]"


def hostile_calls() -> list[Call]:
    paths = [(path, "candles", None) for path in CANDLE_PATHS] + [(FORECAST, "closes", "torch")]
    return [
        Call("POST", path, case.kind, case.body(name), case.content_type, backend, case)
        for case in HOSTILE
        for path, name, backend in paths
        if name in case.fields
        for _ in range(case.copies)
    ]


def valid_calls() -> list[Call]:
    """One small valid request per endpoint (and per forecast backend)."""
    series = _json({"candles": candles()})
    closes = _json({"closes": [c["close"] for c in candles(48)], "horizon": 3})
    calls = [Call("POST", path, "valid", series) for path in CANDLE_PATHS]
    calls += [Call("POST", FORECAST, "valid", closes, backend=b) for b in BACKENDS]
    calls += [Call("GET", path, "valid") for path in ("/api/v1/history", "/api/v1/capabilities")]
    return [*calls, Call("GET", "/ready", "valid")]


def heavy_calls() -> list[Call]:
    """Valid requests with the longest series the service accepts, one per candle endpoint."""
    most = _json({"candles": candles(MAX_CANDLES)})
    return [Call("POST", path, f"valid {MAX_CANDLES} candles", most) for path in CANDLE_PATHS]


@dataclass(frozen=True)
class Outcome:
    call: Call
    status: int | None
    """None: no answer (the error says what happened instead)."""
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class SlowOutcome:
    kind: str
    dropped_after_s: float | None
    """None: still open when the client gave up."""
    answer: str
    """The status line the server sent before closing, if any."""


# A partial request per kind: the server must close the connection within its timeouts.
SLOW_KINDS: dict[str, bytes] = {
    "idle (no bytes)": b"",
    "unfinished headers": b"POST /api/v1/indicators HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ",
    "short body": b"POST /api/v1/indicators HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b'{"candles": [',
}


Probe = tuple[float, int | None]
"""(seconds, status or None) of one /health probe."""


@dataclass
class Campaign:
    """What one run measured."""

    outcomes: list[Outcome] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    """Every /health probe during the campaign."""
    health_seen: list[str] = field(default_factory=list)
    memory_mib: list[float] = field(default_factory=list)
    slow: list[SlowOutcome] = field(default_factory=list)
    burst_s: float = 0.0
    wall_s: float = 0.0


def memory_mib(container: docker.models.containers.Container) -> tuple[float, str]:
    """Memory in use (MiB) as `docker stats` counts it: usage less inactive page cache."""
    raw = container.stats(stream=False, one_shot=True)
    assert isinstance(raw, dict)  # not streamed
    stats = raw["memory_stats"]
    if "usage" not in stats:  # Docker has no figures for a container that is not running
        return math.nan, "none: the container is not running"
    usage, inner = stats["usage"], stats.get("stats", {})
    for key, source in (("total_inactive_file", "cgroup v1"), ("inactive_file", "cgroup v2")):
        if key in inner and inner[key] < usage:
            return (usage - inner[key]) / 2**20, f"{source}: usage - {key}"
    return usage / 2**20, "usage (no inactive_file counter)"


def health_status(container: docker.models.containers.Container) -> str:
    container.reload()
    state = container.attrs["State"]
    return str(state.get("Health", {}).get("Status", f"no healthcheck ({state['Status']})"))


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else math.inf


async def _send(
    client: httpx.AsyncClient, call: Call, gate: asyncio.Semaphore, deadline: float
) -> Outcome:
    headers = {"content-type": call.content_type} if call.body is not None else {}
    if call.hostile is not None:
        # A connection of its own: a server that refuses by closing it (413 before the body is
        # read) must not make the next request on a reused connection look unanswered.
        headers["connection"] = "close"
    params = {"backend": call.backend} if call.backend else {}
    content: bytes | AsyncIterator[bytes] | None = call.body
    if call.hostile is not None and call.hostile.chunked and call.body is not None:
        content = _chunks(call.body)  # no Content-Length: the server must count for itself
    async with gate:
        started = time.monotonic()
        left = min(REQUEST_TIMEOUT_S, deadline - started)
        if left <= 0:
            return Outcome(call, None, 0.0, f"not sent: the burst's {BURST_DEADLINE_S:g} s passed")
        try:
            response = await client.request(
                call.method,
                call.path,
                content=content,
                headers=headers,
                params=params,
                timeout=left,
            )
        except httpx.HTTPError as error:
            return Outcome(call, None, time.monotonic() - started, repr(error))
        return Outcome(call, response.status_code, time.monotonic() - started)


async def _chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _probe(client: httpx.AsyncClient, stop: Event, probes: list[Probe]) -> None:
    """GET /health every PROBE_INTERVAL_S whether or not earlier probes have answered.

    Open loop: a stall of the service is felt by every probe sent during it, not by one probe
    that waits it out (which would make a 10 s stall a single sample).
    """

    async def one() -> None:
        started = time.monotonic()
        try:
            response = await client.get("/health", timeout=PROBE_TIMEOUT_S)
            status: int | None = response.status_code
        except httpx.HTTPError:
            status = None
        probes.append((time.monotonic() - started, status))

    in_flight: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        task = asyncio.create_task(one())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        await asyncio.sleep(PROBE_INTERVAL_S)
    await asyncio.gather(*in_flight)


def _prober_process(url: str, stop: Event, answer: Connection) -> None:
    """The prober's own process: its event loop does nothing else."""

    async def probe() -> list[Probe]:
        probes: list[Probe] = []
        async with httpx.AsyncClient(base_url=url, trust_env=False, limits=PROBE_LIMITS) as client:
            await _probe(client, stop, probes)
        return probes

    answer.send(asyncio.run(probe()))


@contextmanager
def probing(url: str) -> Iterator[Callable[[], list[Probe]]]:
    """/health probed from a process of its own, as a kubelet probes: a pause of the test
    process (its garbage collector, a 3 MiB body being sent) is not the service's. Yields the
    function that stops the prober and returns its probes."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    stop, (receiver, sender) = context.Event(), context.Pipe(duplex=False)
    process = context.Process(target=_prober_process, args=(url, stop, sender), daemon=True)
    process.start()

    def finish() -> list[Probe]:
        stop.set()
        probes: list[Probe] = receiver.recv() if receiver.poll(PROBE_TIMEOUT_S + 30) else []
        return probes

    try:
        yield finish
    finally:
        stop.set()
        process.join(PROBE_TIMEOUT_S + 30)
        if process.is_alive():
            process.kill()
        receiver.close()


async def _sample(target: Service, done: asyncio.Event, campaign: Campaign) -> None:
    while not done.is_set():
        campaign.health_seen.append(await asyncio.to_thread(health_status, target.container))
        campaign.memory_mib.append((await asyncio.to_thread(memory_mib, target.container))[0])
        await asyncio.sleep(SAMPLE_INTERVAL_S)


async def _slow_client(host: str, port: int, kind: str, give_up_s: float) -> SlowOutcome:
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    writer.write(SLOW_KINDS[kind])
    received = b""
    try:
        async with asyncio.timeout(give_up_s):
            while chunk := await reader.read(65536):
                received += chunk
        dropped: float | None = time.monotonic() - started
    except ConnectionError:
        dropped = time.monotonic() - started
    except TimeoutError:
        dropped = None
    finally:
        writer.close()
    return SlowOutcome(kind, dropped, received.split(b"\r\n", 1)[0].decode(errors="replace"))


async def _campaign(target: Service, calls: list[Call], slow_give_up_s: float) -> Campaign:
    campaign = Campaign()
    host, port = target.url.removeprefix("http://").rsplit(":", 1)
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=target.url, trust_env=False, limits=limits) as client:
        watchers = [asyncio.create_task(_sample(target, done, campaign))]
        kinds = list(SLOW_KINDS) * (SLOW_CLIENTS // len(SLOW_KINDS))
        slow = [_slow_client(host, int(port), kind, slow_give_up_s) for kind in kinds]
        slow_task = asyncio.gather(*slow)
        started = time.monotonic()
        gate = asyncio.Semaphore(CONCURRENCY)
        deadline = started + BURST_DEADLINE_S
        sends = (_send(client, call, gate, deadline) for call in calls)
        campaign.outcomes = await asyncio.gather(*sends)
        campaign.burst_s = time.monotonic() - started
        campaign.slow = list(await slow_task)
        done.set()
        await asyncio.gather(*watchers)
        campaign.wall_s = time.monotonic() - started
    return campaign


def burst() -> list[Call]:
    """The hostile cases and the valid requests, interleaved in a fixed order.

    The valid mix leaves out model fits on a real backend (the full image's torch/TensorFlow
    forecasts): each takes seconds of both cores, so on a 2-core machine one queued behind the
    burst outlasts any fair timeout and says nothing about the abuse. The warm-up serves them, and
    the forecast endpoint still gets every hostile input.
    """
    fits = [call for call in valid_calls() if call.path == FORECAST and call.backend]
    valid = [call for call in valid_calls() if call not in fits]
    calls = hostile_calls() * HOSTILE_ROUNDS + valid * VALID_ROUNDS
    calls += heavy_calls() * HEAVY_ROUNDS
    random.Random(0).shuffle(calls)
    return calls


def run(target: Service, slow_give_up_s: float) -> Campaign:
    """The whole campaign: burst, slow clients, /health prober and samplers side by side."""
    with probing(target.url) as probes:
        campaign = asyncio.run(_campaign(target, burst(), slow_give_up_s))
        campaign.probes = probes()
    return campaign


def warm_up(target: Service) -> list[str]:
    """One small valid request per endpoint, then one of the largest size each candle endpoint
    accepts: lazy imports, the model and the working set of the largest request count as
    start-up, so the memory budget measures what a burst leaves behind, not first use."""
    failures = []
    for call in [*valid_calls(), *heavy_calls()]:
        params = {"backend": call.backend} if call.backend else {}
        headers = {"content-type": call.content_type}
        response = httpx.request(
            call.method,
            target.url + call.path,
            content=call.body,
            headers=headers,
            params=params,
            timeout=180,
            trust_env=False,
        )
        if response.status_code >= 500 and response.status_code != 503:
            failures.append(f"{call.label()}: {response.status_code}")
    return failures
