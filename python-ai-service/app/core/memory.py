"""Memory after a burst: heap the service no longer uses, objects it need not keep scanning.

``release_free_heap``: glibc keeps what a process frees in its heap for the next allocation;
after a burst of 5000-candle requests, 15-20 MiB of the service's heap was free memory it kept.
``malloc_trim(0)`` returns the heap's free pages (a few milliseconds). Elsewhere (musl, macOS)
there is no such call and this does nothing.

``exempt_from_gc``: the libraries' own objects, out of the garbage collector's full passes.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_heap() -> None:
    """Return the heap's free pages to the system (ctypes releases the GIL meanwhile)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def exempt_from_gc() -> None:
    """Collect, then exempt every object now alive from the garbage collector's later passes.

    For once the heavy libraries are imported: torch and TensorFlow leave ~650,000 objects that
    live as long as the process, and every full collection walked them all with the GIL held,
    ~300 ms during which /health waited. Frozen, they are not walked again; this collection is
    the last that does (one such pause, when the libraries have just been imported).
    """
    gc.collect()
    gc.freeze()
