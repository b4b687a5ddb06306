"""The abuse campaign against one container: a burst of requests, slow clients, a /health prober
(what is sent is the service's own: `service_api.py`).

Everything is bounded (request counts, concurrency, time limits) and aimed at the container's
published loopback port only. `test_abuse.py` holds the expectations; this module only measures.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
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
SLOW_CLIENTS = 48  # split evenly over the kinds of slow request


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


async def _slow_client(
    host: str, port: int, kind: str, partial: bytes, give_up_s: float
) -> SlowOutcome:
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    writer.write(partial)
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


async def _campaign(
    target: Service, calls: list[Call], slow: Mapping[str, bytes], slow_give_up_s: float
) -> Campaign:
    campaign = Campaign()
    host, port = target.url.removeprefix("http://").rsplit(":", 1)
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=target.url, trust_env=False, limits=limits) as client:
        watchers = [asyncio.create_task(_sample(target, done, campaign))]
        kinds = list(slow) * (SLOW_CLIENTS // len(slow))
        clients = (_slow_client(host, int(port), k, slow[k], slow_give_up_s) for k in kinds)
        slow_task = asyncio.gather(*clients)
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


def run(
    target: Service, burst: list[Call], slow: Mapping[str, bytes], slow_give_up_s: float
) -> Campaign:
    """The whole campaign side by side: the burst of calls; slow clients, each sending one of
    the partial requests of `slow` (by kind), which the server must close within its timeouts;
    the /health prober and the samplers."""
    with probing(target.url) as probes:
        campaign = asyncio.run(_campaign(target, burst, slow, slow_give_up_s))
        campaign.probes = probes()
    return campaign


def warm_up(target: Service, calls: list[Call]) -> list[str]:
    """Each call once, in order, before the campaign: what start-up leaves to first use (lazy
    imports, models, the largest request's working set) is then not counted as the burst's."""
    failures = []
    for call in calls:
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
