"""Which ML libraries this image has, found without importing them.

Importing torch or tensorflow takes seconds and hundreds of MB; ``find_spec`` only locates the
package and ``importlib.metadata`` reads its installed version from the distribution metadata.
Both search the file system (in the full image, a directory of hundreds of distributions), so
each answer is kept: what is installed does not change while the service runs.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from functools import cache

# Distribution name -> import name. The forecast backends' names are the same in both roles.
ML_LIBRARIES = {"torch": "torch", "tensorflow": "tensorflow", "scikit-learn": "sklearn"}


@dataclass(frozen=True)
class LibraryStatus:
    available: bool
    version: str | None


@cache
def library_status(distribution: str, module: str) -> LibraryStatus:
    """Whether ``module`` is importable and the installed version of ``distribution``."""
    if importlib.util.find_spec(module) is None:
        return LibraryStatus(available=False, version=None)
    try:
        version: str | None = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return LibraryStatus(available=True, version=version)


def ml_libraries() -> dict[str, LibraryStatus]:
    return {dist: library_status(dist, module) for dist, module in ML_LIBRARIES.items()}
