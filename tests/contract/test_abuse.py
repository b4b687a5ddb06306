"""Load and abuse: hostile bodies, slow clients and a burst, against a container of its own.

The container is this module's alone, so its memory and health figures are its own and the abuse
cannot disturb the other contract tests. One campaign runs (abuse.py); each test checks one
property of it. The figures go to the terminal, the JUnit report and reports/abuse-<variant>.json.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import abuse
import docker
import docker.models.images
import pytest
import service_api
from abuse import Call, Campaign
from conftest import STARTUP_DEADLINE_S, Emulation

from service_images.containers import Service, running
from service_images.variants import ROOT, Variant

pytestmark = pytest.mark.abuse

SETTLE_SAMPLES = 3  # memory after the suite: the lowest of these, SETTLE_INTERVAL_S apart
SETTLE_INTERVAL_S = 0.5


def documented(call: Call, status: int | None, variant: Variant) -> bool:
    rule = service_api.DOCUMENTED_503.get(call.path)
    return status == 503 and rule is not None and rule(call, variant)


@dataclass(frozen=True)
class Abused:
    campaign: Campaign
    warm_up_failures: list[str]
    memory_start_mib: float
    memory_end_mib: float
    health_after: str
    logs: str
    figures: dict[str, Any]
    state_after: dict[str, Any]
    """Docker's State of the container after the campaign."""


@pytest.fixture(scope="module")
def abused(
    docker_client: docker.DockerClient,
    image: docker.models.images.Image,
    variant: Variant,
    pytestconfig: pytest.Config,
    record_testsuite_property: Callable[[str, object], None],
    emulation: Emulation,
) -> Abused:
    emulation.skip_time_budget("abuse suite (/health p99, the burst's deadlines)")
    limit_mib = variant.budgets.memory_limit_mib
    limits = (
        {}
        if limit_mib is None
        else {"mem_limit": f"{limit_mib}m", "memswap_limit": f"{limit_mib}m"}
    )
    with running(docker_client, image.id, **limits) as target:
        target.wait_until("answers", STARTUP_DEADLINE_S)
        warm_up_failures = abuse.warm_up(target, service_api.warm_up_calls())
        start_mib, source = abuse.memory_mib(target.container)
        campaign = abuse.run(
            target,
            service_api.burst(),
            service_api.SLOW_REQUESTS,
            variant.budgets.slow_client_s + 1,
        )
        health_after = health_after_next_check(target, image)
        target.container.reload()
        state_after = target.container.attrs["State"]
        end_mib = min(settled_memory(target))
        logs = logs_without_probes(target)
    figures = summarize(campaign, variant, start_mib, end_mib, source, health_after)
    figures["state_after"] = {key: state_after.get(key) for key in ("Status", "OOMKilled")}
    report(figures, variant, pytestconfig, record_testsuite_property)
    return Abused(
        campaign, warm_up_failures, start_mib, end_mib, health_after, logs, figures, state_after
    )


def health_after_next_check(target: Service, image: docker.models.images.Image) -> str:
    """Docker's health status once a check that started after the campaign has finished."""
    check = image.attrs["Config"].get("Healthcheck") or {}
    if not check.get("Test"):
        return abuse.health_status(target.container)
    abuse.health_status(target.container)  # reloads the container's attributes
    last = target.container.attrs["State"]["Health"]["Log"][-1:]
    deadline = time.monotonic() + (check.get("Interval", 30e9) + check.get("Timeout", 30e9)) / 1e9
    while time.monotonic() < deadline + 2:
        status = abuse.health_status(target.container)
        if target.container.attrs["State"]["Health"]["Log"][-1:] != last:
            return status
        time.sleep(0.2)
    return f"{status} (no new check within the health check's interval)"


def logs_without_probes(target: Service, keep: int = 60) -> str:
    """The container's last log lines, less the prober's thousand `GET /health` access lines."""
    lines = bytes(target.container.logs(tail=5000)).decode(errors="replace").splitlines()
    return "\n".join([line for line in lines if "GET /health " not in line][-keep:])


def settled_memory(target: Service) -> Iterator[float]:
    for sample in range(SETTLE_SAMPLES):
        if sample:
            time.sleep(SETTLE_INTERVAL_S)
        yield abuse.memory_mib(target.container)[0]


def summarize(
    campaign: Campaign,
    variant: Variant,
    start_mib: float,
    end_mib: float,
    source: str,
    health_after: str,
) -> dict[str, Any]:
    latencies = [seconds for seconds, _ in campaign.probes]
    statuses = Counter(
        f"{o.call.method} {o.call.path} {o.status or 'no answer'}" for o in campaign.outcomes
    )
    dropped = [s.dropped_after_s for s in campaign.slow if s.dropped_after_s is not None]
    budgets = variant.budgets
    return {
        "variant": variant.name,
        "requests": len(campaign.outcomes),
        "hostile_requests": sum(o.call.hostile is not None for o in campaign.outcomes),
        "burst_s": round(campaign.burst_s, 2),
        "campaign_s": round(campaign.wall_s, 2),
        "health_probes": len(latencies),
        "health_p99_ms": round(abuse.p99(latencies) * 1000, 1),
        "health_max_ms": round(max(latencies, default=0) * 1000, 1),
        "health_probes_failed": sum(status != 200 for _, status in campaign.probes),
        "undocumented_5xx": len(undocumented_5xx(campaign, variant)),
        "docker_health_seen": sorted(set(campaign.health_seen)),
        "docker_health_after": health_after,
        "memory_source": source,
        "memory_start_mib": round(start_mib, 1),
        "memory_peak_mib": round(max(filter(math.isfinite, campaign.memory_mib), default=0), 1),
        "memory_end_mib": round(end_mib, 1),
        "memory_ratio": round(end_mib / start_mib, 2),
        "memory_ratio_budget": budgets.memory_growth_ratio,
        "slow_clients": len(campaign.slow),
        "slow_clients_dropped": len(dropped),
        "slow_client_max_drop_s": round(max(dropped, default=0), 2),
        "slow_client_budget_s": budgets.slow_client_s,
        "slow_client_answers": dict(Counter(s.answer or "(closed)" for s in campaign.slow)),
        "statuses": dict(sorted(statuses.items())),
    }


def report(
    figures: dict[str, Any],
    variant: Variant,
    pytestconfig: pytest.Config,
    record_property: Callable[[str, object], None],
) -> None:
    """One line per figure on the terminal, JUnit suite properties, reports/abuse-<variant>.json."""
    path = ROOT / "reports" / f"abuse-{variant.name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.ensure_newline()
    for name, value in figures.items():
        record_property(f"abuse_{name}", value)
        if terminal is not None:
            terminal.write_line(f"abuse[{variant.name}] {name}: {value}")
    if terminal is not None:
        terminal.write_line(f"abuse[{variant.name}] written to {path.relative_to(ROOT)}")


def undocumented_5xx(campaign: Campaign, variant: Variant) -> list[str]:
    return [
        f"{o.call.label()}: {o.status}"
        for o in campaign.outcomes
        if o.status is not None and o.status >= 500 and not documented(o.call, o.status, variant)
    ]


def test_no_5xx_but_the_documented_503s(abused: Abused, variant: Variant) -> None:
    offending = abused.warm_up_failures + undocumented_5xx(abused.campaign, variant)
    assert not offending, (
        f"{len(offending)} undocumented 5xx answers (documented: 503 on "
        f"{', '.join(service_api.DOCUMENTED_503)}):\n" + "\n".join(sorted(set(offending)))
    ) + f"\ncontainer logs:\n{abused.logs}"


def test_hostile_inputs_are_refused_with_4xx(abused: Abused, variant: Variant) -> None:
    wrong = []
    for outcome in abused.campaign.outcomes:
        case = outcome.call.hostile
        if case is None or outcome.status in case.refused_with:
            continue
        if documented(outcome.call, outcome.status, variant):
            continue  # the endpoint is unavailable here, whatever the body
        if outcome.status is None and case.reset_ok:
            continue
        expected = "/".join(map(str, sorted(case.refused_with)))
        got = outcome.status or f"no answer ({outcome.error})"
        wrong.append(f"{outcome.call.label()}: {got}, expected {expected}")
    assert not wrong, f"{len(wrong)} hostile requests not refused as expected:\n" + "\n".join(
        sorted(set(wrong))
    )


def test_valid_requests_are_served_during_the_abuse(abused: Abused, variant: Variant) -> None:
    failed = [
        f"{o.call.label()}: {o.status or f'no answer ({o.error})'} after {o.seconds:.1f} s"
        for o in abused.campaign.outcomes
        if o.call.hostile is None and o.status != 200 and not documented(o.call, o.status, variant)
    ]
    assert not failed, f"{len(failed)} valid requests failed during the abuse:\n" + "\n".join(
        sorted(set(failed))
    )


def test_every_probe_answered_within_the_health_checks_timeout(
    abused: Abused, image: docker.models.images.Image
) -> None:
    """What Docker or a kubelet would see: a probe without a 200 in time counts as failed. The
    latency figures (p99, max) are reported; a latency budget is the bench's to measure."""
    timeout_s = (image.attrs["Config"].get("Healthcheck") or {}).get("Timeout", 30e9) / 1e9
    late = Counter(
        str(status) if status != 200 else f"200 after more than {timeout_s:g} s"
        for seconds, status in abused.campaign.probes
        if status != 200 or seconds > timeout_s
    )
    figures = abused.figures
    assert not late, (
        f"/health during the abuse: {sum(late.values())} of {figures['health_probes']} probes "
        f"failed as the health check ({timeout_s:g} s timeout) counts them: {dict(late)}; p99 "
        f"{figures['health_p99_ms']} ms, max {figures['health_max_ms']} ms"
    )


def test_container_never_unhealthy(abused: Abused) -> None:
    during = sorted(set(abused.campaign.health_seen))
    assert not any(status.startswith("unhealthy") for status in [*during, abused.health_after]), (
        f"Docker reported the container unhealthy: during the abuse {during}, after it "
        f"{abused.health_after}\ncontainer logs:\n{abused.logs}"
    )


def test_never_killed_at_its_memory_limit(abused: Abused, variant: Variant) -> None:
    state = abused.state_after
    alive = state.get("Status") == "running" and not state.get("OOMKilled")
    assert alive, (
        f"with a memory limit of {variant.budgets.memory_limit_mib} MiB, the container is "
        f"{state.get('Status')} (OOMKilled: {state.get('OOMKilled')}, exit code "
        f"{state.get('ExitCode')}, peak {abused.figures['memory_peak_mib']} MiB)\n"
        f"container logs:\n{abused.logs}"
    )


def test_memory_growth_within_budget(abused: Abused, variant: Variant) -> None:
    figures = abused.figures
    assert figures["memory_ratio"] <= variant.budgets.memory_growth_ratio, (
        f"memory after the abuse {figures['memory_end_mib']} MiB = {figures['memory_ratio']}x "
        f"{figures['memory_start_mib']} MiB after start-up (budget "
        f"{variant.budgets.memory_growth_ratio:g}x; peak {figures['memory_peak_mib']} MiB; "
        f"{figures['memory_source']})"
    )


def test_slow_clients_are_dropped(abused: Abused, variant: Variant) -> None:
    budget = variant.budgets.slow_client_s
    late: dict[str, list[str]] = {}
    for slow in abused.campaign.slow:
        if slow.dropped_after_s is None:
            late.setdefault(slow.kind, []).append(f"open after {budget + 1:g} s")
        elif slow.dropped_after_s > budget:
            late.setdefault(slow.kind, []).append(f"dropped after {slow.dropped_after_s:.1f} s")
    per_kind = Counter(slow.kind for slow in abused.campaign.slow)
    assert not late, f"unfinished requests not dropped within {budget:g} s:\n" + "\n".join(
        f"{kind}: {len(found)} of {per_kind[kind]} ({', '.join(sorted(set(found)))})"
        for kind, found in late.items()
    )
