"""Runs INSIDE an image (`python -c PROBE '<request JSON>'`): what it holds, as one JSON line.

Standard library only, so no tool is added to an image to describe it. Every answer lists each
Python distribution, normalised as PEP 503 names them: those of the service's environment (what
`python` imports from, sys.path), with their top-level modules, and those of any other Python
environment found in the usual places (the base image's site- and dist-packages, other venvs).
The request asks for more, all in the same exec:

- "import_all": import every top-level module of the service's environment (errors are kept);
- "forbidden_modules": which of these modules are importable;
- "backends": run each deep-learning backend once ("torch", "tensorflow").
"""

import contextlib
import glob
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import traceback
from typing import Any

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OTHER_ENVIRONMENTS = (
    "/usr/lib/python3*/*-packages",
    "/usr/lib/python3/dist-packages",
    "/usr/local/lib/python3*/*-packages",
    "/opt/*/lib/python3*/site-packages",
    "/root/.local/lib/python3*/site-packages",
)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_modules(dist: importlib.metadata.Distribution) -> list[str]:
    modules = set()
    for path in dist.files or ():
        first = path.parts[0]
        if len(path.parts) == 1:
            name = first.split(".")[0]  # module.py, _ext.cpython-311-x86_64-linux-gnu.so
            if not first.endswith((".py", ".so")):
                continue
        else:
            name = first
        if IDENTIFIER.match(name) and name != "__pycache__":
            modules.add(name)
    return sorted(modules)


def listing(paths: list[str], environment: str) -> list[dict[str, Any]]:
    found = []
    for dist in importlib.metadata.distributions(path=paths):
        entry: dict[str, Any] = {
            "name": normalise(dist.metadata["Name"]),
            "version": dist.version,
            "environment": environment,
            "location": str(dist.locate_file("")).rstrip("/"),  # the directory of its .dist-info
        }
        if environment == "service":
            entry["top_level"] = top_level_modules(dist)
        found.append(entry)
    return found


def run_backend(name: str) -> dict[str, Any]:
    if name == "torch":
        import torch  # type: ignore[import-not-found,unused-ignore]

        torch.manual_seed(0)
        value = float((torch.ones(3, 3) @ torch.arange(3.0)).sum())
        return {"version": torch.__version__.split("+")[0], "result": value}
    if name == "tensorflow":
        import tensorflow as tf  # type: ignore[import-not-found,unused-ignore]

        value = float(tf.reduce_sum(tf.matmul(tf.ones((3, 3)), tf.reshape(tf.range(3.0), (3, 1)))))
        return {"version": tf.__version__, "result": value}
    raise ValueError(f"unknown backend {name}")


def main() -> None:
    request = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    service_paths = [path for path in sys.path if path and os.path.isdir(path)]
    seen = {os.path.realpath(path) for path in service_paths}
    others = sorted(
        {
            path
            for pattern in OTHER_ENVIRONMENTS
            for path in glob.glob(pattern)
            if os.path.isdir(path) and os.path.realpath(path) not in seen
        }
    )
    distributions = listing(service_paths, "service") + listing(others, "other")
    answer: dict[str, Any] = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "pythonpath": os.environ.get("PYTHONPATH"),
        "distributions": distributions,
        "import_errors": {},
        "forbidden_modules": [],
        "backends": {},
    }
    modules = {m for d in distributions if d["environment"] == "service" for m in d["top_level"]}
    # Imports print, warn and sometimes write to stdout: keep stdout for the JSON answer.
    with contextlib.redirect_stdout(sys.stderr):
        if request.get("import_all"):
            for module in sorted(modules):
                try:
                    importlib.import_module(module)
                except BaseException as error:
                    answer["import_errors"][module] = f"{type(error).__name__}: {error}"[:300]
        for module in request.get("forbidden_modules", []):
            if importlib.util.find_spec(module) is not None:
                answer["forbidden_modules"].append(module)
        for backend in request.get("backends", []):
            try:
                answer["backends"][backend] = run_backend(backend)
            except BaseException:
                answer["backends"][backend] = {"error": traceback.format_exc(limit=3)[-600:]}
    print(json.dumps(answer))


if __name__ == "__main__":  # `python -c PROBE`, as this always runs
    main()
