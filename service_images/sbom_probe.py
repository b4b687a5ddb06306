"""Runs INSIDE an image (`python -c`): every Python distribution it holds, as one JSON line.

Standard library only, so no tool is added to the image to describe it. The service's own
environment is what `python` on PATH sees (sys.path); every other Python environment found in the
usual places (the base image's site- and dist-packages, other venvs) is listed too, so nothing
installed outside the service's environment escapes the SBOM.
"""

import glob
import importlib.metadata
import json
import os
import re
import sys
from typing import Any

OTHER_ENVIRONMENTS = (
    "/usr/lib/python3*/*-packages",
    "/usr/lib/python3/dist-packages",
    "/usr/local/lib/python3*/*-packages",
    "/opt/*/lib/python3*/site-packages",
    "/root/.local/lib/python3*/site-packages",
)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def listing(paths: list[str], environment: str) -> list[dict[str, str]]:
    found = []
    for dist in importlib.metadata.distributions(path=paths):
        location = str(dist.locate_file(""))  # the directory that holds its .dist-info
        found.append(
            {
                "name": normalise(dist.metadata["Name"]),
                "version": dist.version,
                "environment": environment,
                "location": location.rstrip("/"),
            }
        )
    return found


def main() -> None:
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
        "distributions": distributions,
    }
    print(json.dumps(answer))


main()
