"""The bench's results: their data model, budget checks, and how they are shown.

Everything here is pure (no Docker): `run.py` measures and fills a `Report`; this module turns it
into JSON, a Markdown table, a PNG chart and the README's performance section, and tells which
budgets of the variants table were exceeded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from service_images.errors import MissingFile, ToolError
from service_images.variants import Budgets

SCHEMA = 2  # 2: "before" (the pre-project Dockerfiles) replaces 1's "naive"
TIMES = "\u00d7"  # the multiplication sign, as in 0.42 times


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    unit: str
    """s, MB or count: how values are formatted."""


# The figures the bench takes for each variant, in table order.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("cold_build_s", "cold build", "s"),
    MetricSpec("rebuild_s", "rebuild after a service-code change", "s"),
    MetricSpec("bump_rebuild_s", "rebuild after a light-dependency bump", "s"),
    MetricSpec("bump_new_mb", "bytes that rebuild added (nodes pull again)", "MB"),
    MetricSpec("peak_build_rss_mb", "peak build memory (RSS)", "MB"),
    MetricSpec("image_mb", "image size", "MB"),
    MetricSpec("over_base_mb", "size over the base image", "MB"),
    MetricSpec("compressed_mb", "compressed size (as a registry stores it)", "MB"),
    MetricSpec("layers", "layers", "count"),
    MetricSpec("distributions", "installed distributions", "count"),
    MetricSpec("health_s", "start → /health answers", "s"),
    MetricSpec("healthy_s", "start → Docker `healthy`", "s"),
    MetricSpec("contract_s", "contract suite", "s"),
    MetricSpec("push_s", "push to a registry", "s"),
    MetricSpec("pushed_mb", "bytes pushed (compressed, as the registry stores them)", "MB"),
    MetricSpec("pull_s", "pull on a clean engine", "s"),
    MetricSpec("node_start_s", "cold node: pull, start, /health answers", "s"),
    MetricSpec("release_s", "release path: build, contract, push, cold node", "s"),
    MetricSpec("cache_export_s", "build cache exported to a registry", "s"),
    MetricSpec("cache_build_s", "a clean engine's build from that cache", "s"),
    MetricSpec("cache_pulled_mb", "bytes that build pulled", "MB"),
    MetricSpec("reproducible_build_s", "reproducible cold build on a clean engine", "s"),
    MetricSpec("differing_layers", "layers that differ between two reproducible builds", "count"),
)
SPECS = {spec.key: spec for spec in METRICS}


@dataclass(frozen=True)
class BudgetRule:
    """How one field of `Budgets` is checked: against our figure, ours/before, or our figure as
    a share of another of ours (`share_of`)."""

    budget: str
    metric: str
    on_ratio: bool
    share_of: str | None = None


BUDGET_RULES: tuple[BudgetRule, ...] = (
    BudgetRule("cold_build_ratio", "cold_build_s", on_ratio=True),
    BudgetRule("rebuild_s", "rebuild_s", on_ratio=False),
    BudgetRule("bump_rebuild_s", "bump_rebuild_s", on_ratio=False),
    BudgetRule("bump_new_share", "bump_new_mb", on_ratio=False, share_of="image_mb"),
    BudgetRule("peak_build_rss_mb", "peak_build_rss_mb", on_ratio=False),
    BudgetRule("image_mb", "image_mb", on_ratio=False),
    BudgetRule("image_ratio", "image_mb", on_ratio=True),
    BudgetRule("size_over_base_ratio", "over_base_mb", on_ratio=True),
    BudgetRule("health_s", "health_s", on_ratio=False),
    BudgetRule("health_ratio", "health_s", on_ratio=True),
    BudgetRule("contract_s", "contract_s", on_ratio=False),
    BudgetRule("push_ratio", "push_s", on_ratio=True),
    BudgetRule("pushed_ratio", "pushed_mb", on_ratio=True),
    BudgetRule("node_start_ratio", "node_start_s", on_ratio=True),
    BudgetRule("release_ratio", "release_s", on_ratio=True),
    BudgetRule("differing_layers", "differing_layers", on_ratio=False),
)


@dataclass(frozen=True)
class Metric:
    key: str
    before: float | None
    ours: float | None

    @property
    def ratio(self) -> float | None:
        """ours / before; None when either is missing or before is zero."""
        if self.before is None or self.ours is None or self.before == 0:
            return None
        return self.ours / self.before


@dataclass(frozen=True)
class BudgetCheck:
    budget: str
    metric: str
    on_ratio: bool
    limit: float
    value: float | None
    share_of: str | None = None

    @property
    def ok(self) -> bool | None:
        """True within budget, False over it, None when the figure could not be measured."""
        return None if self.value is None else self.value <= self.limit

    def describe(self, variant: str) -> str:
        spec = SPECS[self.metric]
        what = f"{variant} {spec.label}" + (" ours/before" if self.on_ratio else "")
        if self.share_of:
            what += f" as a share of the {SPECS[self.share_of].label}"
        return f"{what} {_format_budget_value(self)} > {_format_limit(self)} ({self.budget})"


def evaluate_budgets(budgets: Budgets, metrics: Mapping[str, Metric]) -> list[BudgetCheck]:
    """Each budget the variant sets (None: no target), checked against the measured metrics."""
    checks = []
    for rule in BUDGET_RULES:
        limit = getattr(budgets, rule.budget)
        if limit is None:
            continue
        metric = metrics.get(rule.metric)
        value = None if metric is None else (metric.ratio if rule.on_ratio else metric.ours)
        if rule.share_of is not None:
            whole = metrics.get(rule.share_of)
            ours = None if whole is None else whole.ours
            value = None if value is None or not ours else value / ours
        checks.append(
            BudgetCheck(rule.budget, rule.metric, rule.on_ratio, float(limit), value, rule.share_of)
        )
    return checks


@dataclass
class VariantResult:
    variant: str
    description: str
    metrics: dict[str, Metric]
    budgets: list[BudgetCheck]
    notes: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    """Role (ours, before, ...) -> tag, as built in this run."""

    @property
    def exceeded(self) -> list[BudgetCheck]:
        return [check for check in self.budgets if check.ok is False]


@dataclass
class Report:
    date: str
    machine: dict[str, Any]
    tools: dict[str, str]
    variants: list[VariantResult]
    notes: list[str] = field(default_factory=list)

    def exceeded(self) -> list[str]:
        """One line per exceeded budget, naming the variant, the figure and the limit."""
        return [
            check.describe(result.variant) for result in self.variants for check in result.exceeded
        ]

    def to_json(self) -> dict[str, Any]:
        variants = []
        for result in self.variants:
            variants.append(
                {
                    "variant": result.variant,
                    "description": result.description,
                    "images": result.images,
                    "metrics": {
                        key: {
                            "key": key,
                            "before": _rounded(metric.before),
                            "ours": _rounded(metric.ours),
                            "ratio": _rounded(metric.ratio),
                            "unit": SPECS[key].unit,
                        }
                        for key, metric in result.metrics.items()
                    },
                    "budgets": [
                        {**asdict(check), "value": _rounded(check.value), "ok": check.ok}
                        for check in result.budgets
                    ],
                    "notes": result.notes,
                }
            )
        return {
            "schema": SCHEMA,
            "date": self.date,
            "machine": self.machine,
            "tools": self.tools,
            "notes": self.notes,
            "variants": variants,
            "exceeded": self.exceeded(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        if data.get("schema") != SCHEMA:
            raise ToolError(
                f"bench results have schema {data.get('schema')!r}, this code reads {SCHEMA}: "
                "run `invoke bench` again."
            )
        variants = []
        for item in data["variants"]:
            metrics = {
                key: Metric(key, value["before"], value["ours"])
                for key, value in item["metrics"].items()
            }
            budgets = [
                BudgetCheck(
                    check["budget"],
                    check["metric"],
                    check["on_ratio"],
                    check["limit"],
                    check["value"],
                    check.get("share_of"),
                )
                for check in item["budgets"]
            ]
            variants.append(
                VariantResult(
                    item["variant"],
                    item["description"],
                    metrics,
                    budgets,
                    list(item["notes"]),
                    dict(item["images"]),
                )
            )
        return cls(
            data["date"], dict(data["machine"]), dict(data["tools"]), variants, list(data["notes"])
        )


def _rounded(value: float | None) -> float | None:
    """Four decimals: more than any of these figures can mean, and a readable JSON file."""
    return None if value is None else round(value, 4)


def load(path: Path) -> Report:
    if not path.is_file():
        raise MissingFile(f"{path} is missing: run `invoke bench` first.")
    return Report.from_json(json.loads(path.read_text(encoding="utf-8")))


def save(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")


# --- Markdown -------------------------------------------------------------------------------------


def format_value(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if unit == "s":
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:,.0f}"


def format_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}{TIMES}"


def _format_limit(check: BudgetCheck) -> str:
    if check.on_ratio:
        return f"{check.limit:.2f}{TIMES}"
    if check.share_of:
        return f"{check.limit:.0%}"
    return format_value(check.limit, SPECS[check.metric].unit)


def _format_budget_value(check: BudgetCheck) -> str:
    if check.on_ratio:
        return format_ratio(check.value)
    if check.share_of:
        return "n/a" if check.value is None else f"{check.value:.1%}"
    return format_value(check.value, SPECS[check.metric].unit)


def _budget_cell(checks: Iterable[BudgetCheck]) -> str:
    cells = []
    for check in checks:
        mark = {True: "✅", False: "❌", None: "not measured"}[check.ok]
        scope = "ratio" if check.on_ratio else "ours"
        if check.share_of:
            scope = f"of the {SPECS[check.share_of].label}"
            cells.append(f"{_format_budget_value(check)} {scope} ≤ {_format_limit(check)} {mark}")
            continue
        cells.append(f"{scope} ≤ {_format_limit(check)} {mark}")
    return "; ".join(cells)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_variant_table(result: VariantResult) -> str:
    lines = [
        "| metric | before | ours | ratio (ours/before) | budget |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for spec in METRICS:
        metric = result.metrics.get(spec.key)
        if metric is None:
            continue
        checks = [check for check in result.budgets if check.metric == spec.key]
        lines.append(
            f"| {_escape(spec.label)} | {format_value(metric.before, spec.unit)} "
            f"| {format_value(metric.ours, spec.unit)} | {format_ratio(metric.ratio)} "
            f"| {_escape(_budget_cell(checks))} |"
        )
    return "\n".join(lines)


def describe_machine(machine: Mapping[str, Any]) -> str:
    memory = machine.get("memory_gib")
    parts = [
        f"{machine.get('cpus', '?')} CPUs",
        f"{memory:.0f} GiB RAM" if isinstance(memory, (int, float)) else "? GiB RAM",
        f"{machine.get('os', 'Linux')} (kernel {machine.get('kernel', '?')})",
        f"Docker Engine {machine.get('docker_server', '?')}",
        f"{machine.get('image_store', '?')} image store ({machine.get('storage_driver', '?')})",
        f"buildx {machine.get('buildx', '?')}",
        f"cgroup v{machine.get('cgroup_version', '?')}",
    ]
    return ", ".join(parts)


def describe_tools(tools: Mapping[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in tools.items())


def render_markdown(report: Report, *, heading_level: int = 2) -> str:
    """The whole report: when, where, then one table per variant with its notes."""
    hashes = "#" * heading_level
    out = [
        f"{hashes} Build benchmark",
        "",
        f"Measured {report.date} on {describe_machine(report.machine)}.  ",
        f"Tools: {describe_tools(report.tools)}.",
        "",
        "Before: the pre-project Dockerfiles of the write-up this project grew out of, step for "
        "step (`service_images/before/`, which marks the two places they differ). Ours: the "
        "project's Dockerfiles. Every ratio is ours/before from the same run; lower is better. "
        "Timings on a shared machine are noisy by several percent.",
    ]
    for result in report.variants:
        out += ["", f"{hashes}# {result.variant}: {result.description}", ""]
        out.append(render_variant_table(result))
        exceeded = [check.describe(result.variant) for check in result.exceeded]
        if exceeded:
            out += ["", "**Budgets exceeded:** " + "; ".join(exceeded) + "."]
        if result.notes:
            out += ["", *[f"- {_escape_md_note(note)}" for note in result.notes]]
    if report.notes:
        out += ["", *[f"- {_escape_md_note(note)}" for note in report.notes]]
    return "\n".join(out) + "\n"


def _escape_md_note(note: str) -> str:
    return note.replace("\n", " ")


# --- README section -------------------------------------------------------------------------------


def render_readme_section(report: Report, chart: str | None = None) -> str:
    """What goes between the README's bench markers: generated, never typed by hand."""
    body = render_markdown(report, heading_level=3)
    lines = [body.rstrip("\n")]
    if chart:
        lines += ["", f"![ours/before per figure, lower is better]({chart})"]
    return "\n".join(lines) + "\n"


# --- Chart ----------------------------------------------------------------------------------------


def render_chart(report: Report, path: Path) -> None:
    """A PNG: per variant, ours/before for each figure; the before line at 1, budgets marked."""
    import matplotlib  # lazily: only the bench needs it, and it is slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [result for result in report.variants if _ratios(result)]
    if not results:
        return
    rows = max(len(_ratios(result)) for result in results)
    figure, axes = plt.subplots(
        len(results), 1, figsize=(8, 1.2 + 0.45 * rows * len(results)), squeeze=False
    )
    for axis, result in zip(axes[:, 0], results, strict=True):
        ratios = _ratios(result)
        labels = [SPECS[key].label for key, _ in ratios]
        values = [value for _, value in ratios]
        positions = list(range(len(ratios)))
        colours = ["#2a9d8f" if value <= 1 else "#e76f51" for value in values]
        axis.barh(positions, values, color=colours)
        axis.set_yticks(positions, labels)
        axis.invert_yaxis()
        axis.axvline(1.0, color="#444444", linestyle="--", linewidth=1)
        for position, value in zip(positions, values, strict=True):
            axis.annotate(
                f"{value:.2f}{TIMES}",
                (value, position),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        limits = {check.metric: check.limit for check in result.budgets if check.on_ratio}
        for position, (key, _) in enumerate(ratios):
            if key in limits:
                axis.plot([limits[key]] * 2, [position - 0.4, position + 0.4], color="#d62828")
        axis.set_title(
            f"{result.variant}: ours/before (before = 1, red tick = budget)", fontsize=10
        )
        axis.set_xlim(0, max([1.2, *[value * 1.15 for value in values]]))
    figure.suptitle(f"Build benchmark, {report.date}", fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _ratios(result: VariantResult) -> Sequence[tuple[str, float]]:
    pairs = []
    for spec in METRICS:
        metric = result.metrics.get(spec.key)
        if metric is not None and metric.ratio is not None:
            pairs.append((spec.key, metric.ratio))
    return pairs
