"""Runs INSIDE a container (`python -c`), in one exec: what is installed, what imports, what runs.

Takes a JSON object as argv[1] ({"forbidden_modules": [...], "backends": [...]}) and prints one
JSON object on stdout. Standard library only: it must run in any image with a Python.
"""

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import traceback

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def top_level_modules(dist):
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


def run_backend(name):
    if name == "torch":
        import torch

        torch.manual_seed(0)
        value = float((torch.ones(3, 3) @ torch.arange(3.0)).sum())
        return {"version": torch.__version__.split("+")[0], "result": value}
    if name == "tensorflow":
        import tensorflow as tf

        value = float(tf.reduce_sum(tf.matmul(tf.ones((3, 3)), tf.reshape(tf.range(3.0), (3, 1)))))
        return {"version": tf.__version__, "result": value}
    raise ValueError(f"unknown backend {name}")


def main():
    request = json.loads(sys.argv[1])
    facts = {
        "python": sys.executable,
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "pythonpath": os.environ.get("PYTHONPATH"),
        "distributions": {},
        "top_level": {},
        "import_errors": {},
        "forbidden_modules": [],
        "backends": {},
        "certifi": [],
    }
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        facts["distributions"][name] = dist.version
        facts["top_level"][name] = top_level_modules(dist)
    # Imports print, warn and sometimes write to stdout: keep stdout for the JSON answer.
    with contextlib.redirect_stdout(sys.stderr):
        if request.get("import_all"):
            for module in sorted({m for mods in facts["top_level"].values() for m in mods}):
                try:
                    importlib.import_module(module)
                except BaseException as error:
                    facts["import_errors"][module] = f"{type(error).__name__}: {error}"[:300]
        if importlib.util.find_spec("certifi"):
            import certifi

            facts["certifi"].append(certifi.where())
        for module in request.get("forbidden_modules", []):
            if importlib.util.find_spec(module) is not None:
                facts["forbidden_modules"].append(module)
        for backend in request.get("backends", []):
            try:
                facts["backends"][backend] = run_backend(backend)
            except BaseException:
                facts["backends"][backend] = {"error": traceback.format_exc(limit=3)[-600:]}
    print(json.dumps(facts))


main()
