"""`invoke bench`: build each variant and its pre-project reference in one run and measure both.

run.py      the run: builds, start-up, contract suite, clean-up, budgets (run_bench)
context.py  the temporary build contexts, and the changes a rebuild is timed after
images.py   what is measured on a built image
memory.py   peak build memory from BuildKit's cgroup
machine.py  the machine, its tools, and other builds running on it
display.py  progress output
report.py   the results: JSON, Markdown, chart, budget checks (pure, no Docker)
"""
