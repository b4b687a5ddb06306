"""`invoke bench`: build each variant and its "before" reference in one run and measure both.

run.py      the run: builds, start-up, contract suite, clean-up, budgets
memory.py   peak build memory from BuildKit's cgroup
machine.py  the machine, its tools, and other builds running on it
display.py  progress output
report.py   the results: JSON, Markdown, chart, budget checks (pure, no Docker)
"""

from service_images.bench.run import BenchOptions, parse_variants, run_bench

__all__ = ["BenchOptions", "parse_variants", "run_bench"]
